"""cwm: pre-train Contextualized World Models on in-the-wild video, fine-tune visual RL.

Stages talk only through files on disk:
    raw video --cwm.ingest--> WebDataset shards --cwm.shards--> clip batches --cwm.model--> checkpoint
    control env --cwm.rl (HDF5 replay, loads the checkpoint)
"""

__version__ = "0.1.0"
