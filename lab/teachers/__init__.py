"""Training the lab's own mini teachers (``mini-wan``, ``mini-ltx``) as VAEs on real clips.

- :mod:`lab.teachers.config`: what to train (model presets, clips, recipe);
- :mod:`lab.teachers.train`: the training loop;
- :mod:`lab.teachers.checkpoint`: atomic, resumable training state;
- :mod:`lab.teachers.heldout`: held-out reconstruction figures;
- :mod:`lab.teachers.export`: a diffusers folder with latent statistics and a model card.
"""
