"""diffusiontools: train, sample and evaluate Gaussian and cold diffusion models on MNIST."""

__version__ = "0.1.0"
