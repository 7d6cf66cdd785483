"""Command-line entry points. They parse arguments and call a stage; no stage imports them."""
