"""Flax modules: the paper's classifiers and VAE-GAN."""
