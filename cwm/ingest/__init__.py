"""Ingest: raw video -> 64x64 segments -> WebDataset tar shards, in parallel on dask."""
