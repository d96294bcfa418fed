"""The lab's one training loop and what it is built from, for teacher training and distillation alike:

- :mod:`lab.training.loop`: ``fit(task, out)``, the loop: run folder and store, signals, schedule, backward, DDP,
  grad clipping, the NaN policy, checkpoint cadence and content, finish / fail / resume;
- :mod:`lab.training.task`: the interface a kind of run implements (``Task``: setup, step, evaluate, state);
  :mod:`lab.distill.trainer` (``DistillTask``) and :mod:`lab.teachers.train` (``TeacherTask``) are the two;
- :mod:`lab.training.run_folder`: which folders a run may write into, one writer at a time, what a run
  owns there (and so what ``--overwrite`` replaces), clearing a killed writer's leftovers;
- :mod:`lab.training.checkpoints`: ``checkpoints/step-*`` folders, written atomically (safetensors + a
  weights_only-loadable state), pruned, read back, set aside when unreadable;
- :mod:`lab.training.schedule`: the warmup + cosine learning rate and plateau detection;
- :mod:`lab.training.signals`: SIGTERM / Ctrl-C as a clean ``interrupted`` stop;
- :mod:`lab.training.distributed`: ranks and collectives under ``torchrun``;
- :mod:`lab.training.hooks`: callbacks (a notebook's live plot, TensorBoard) and the run-store logger;
- :mod:`lab.training.config`: strict reading of the nested run configs.

Both kinds of run log to the same run store (:mod:`lab.runs.store`), so the dashboard shows both, and both resume
from their newest readable checkpoint.
"""
