"""Training: the step loop, the split it trains on, the checkpoint schema (written and read in
``checkpoint.py``), the run folder, data parallelism, stop signals and the trained-model loader."""
