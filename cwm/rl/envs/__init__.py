"""Pixel environments for RL: Meta-world, DMC and DMC with Remastered-style looks."""
