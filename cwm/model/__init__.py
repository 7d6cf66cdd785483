"""Model: ContextWM and its baselines (plain ResNet WM, DreamerV2), pre-trained from shards."""
