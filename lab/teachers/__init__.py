"""Training the lab's own mini teachers (``mini-wan``, ``mini-ltx``) as VAEs on real clips.

- :mod:`lab.teachers.config`: what to train (model presets, clips, the run's nested config and its flags);
- :mod:`lab.teachers.train`: the teacher task of the lab's training loop (:mod:`lab.training.loop`);
- :mod:`lab.teachers.checkpoint`: reading a teacher run's training state (export, warm start, old runs);
- :mod:`lab.teachers.heldout`: held-out reconstruction figures;
- :mod:`lab.teachers.export`: a diffusers folder with latent statistics and a model card
  (:mod:`lab.teachers.card`: the teacher's sections of :mod:`lab.cards`).

The loop, run folders, checkpoint folders, the schedule, signals, DDP and strict configs are shared with
distillation (:mod:`lab.training`), and both log to the run store the dashboard reads.
"""
