"""RL: fine-tune a pre-trained world model on Meta-world and DMC with HDF5 replay."""
