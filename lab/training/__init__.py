"""What every training run of the lab shares, teacher training and distillation alike:

- :mod:`lab.training.run_folder`: which folders a run may write into, one writer at a time, what a run
  owns there (and so what ``--overwrite`` replaces), clearing a killed writer's leftovers;
- :mod:`lab.training.checkpoints`: ``checkpoints/step-*`` folders, written atomically (safetensors + a
  weights_only-loadable state), pruned, read back, set aside when unreadable;
- :mod:`lab.training.schedule`: the warmup + cosine learning rate and plateau detection;
- :mod:`lab.training.signals`: SIGTERM / Ctrl-C as a clean ``interrupted`` stop.

Both loops log to the same run store (:mod:`lab.runs.store`), so the dashboard shows both kinds of run, and
both resume from their newest readable checkpoint. What each loop trains and with which losses stays with it
(:mod:`lab.teachers.train`, :mod:`lab.distill.trainer`).
"""
