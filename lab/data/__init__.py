"""Clips in: video IO, sample clips, clip and latent datasets."""
