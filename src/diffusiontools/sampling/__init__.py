"""Sampling: the sampler registry (``registry.py``), one file per sampler, and seeded batched
generation with guidance and start states (``generation.py``). Takes a network and a process."""
