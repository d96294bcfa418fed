"""Training the lab's own mini teachers (``mini-wan``, ``mini-ltx``) as VAEs on real clips.

- :mod:`lab.teachers.config`: what to train (model presets, clips, recipe);
- :mod:`lab.teachers.train`: the training loop;
- :mod:`lab.teachers.checkpoint`: what a teacher checkpoint holds (written as every run's are);
- :mod:`lab.teachers.heldout`: held-out reconstruction figures;
- :mod:`lab.teachers.export`: a diffusers folder with latent statistics and a model card
  (:mod:`lab.teachers.card`: the teacher's sections of :mod:`lab.cards`).

Run folders, checkpoint folders, the schedule, signals and strict configs are shared with distillation
(:mod:`lab.training`), and both log to the run store the dashboard reads.
"""
