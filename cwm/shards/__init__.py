"""Shards: stream clips with context frames from WebDataset shards (one machine to many)."""
