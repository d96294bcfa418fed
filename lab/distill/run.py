"""``distill(config, out, resume=False, callbacks=(), overwrite=False)``: one distillation run as a process
sees it. It reads the config and trains ``lab.distill.trainer.DistillTask`` with the lab's training loop
(``lab.training.loop.fit``: the run folder's lock, the process group under ``torchrun``, signals, checkpoints,
resume). A SIGTERM / Ctrl-C ends it as KeyboardInterrupt (exit status 130), after the loop checkpointed the
step it was in; the run is marked ``interrupted`` and resumes from that checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from lab.distill.config import load_config
from lab.data.dataset import check_training_data
from lab.distill.trainer import DistillTask
from lab.errors import ConfigError
from lab.training.loop import fit
from lab.training.run_folder import run_config


def distill(config, out, resume: bool = False, callbacks=(), overwrite: bool = False) -> dict:
    """Run (or resume) a distillation into the run folder ``out``; returns the final dict (also stored
    in the run store's meta as ``final``). ``config``: a path, a dict or a DistillConfig; with
    ``resume`` and ``config=None`` the run's own config.json is used. ``out`` must be new, empty or (with
    ``resume``) a run; ``overwrite`` starts a run in any other folder, replacing only a run's own files
    there (``lab.training.run_folder``). The process holds the run's lock until it returns."""
    out = Path(out)
    if config is None:
        if not resume:
            raise ConfigError("distill needs a config (a TOML/YAML file, a dict or a DistillConfig).")
        config = run_config(out)
    cfg = load_config(config)
    if not cfg.data.cache:
        check_training_data(cfg.data.clips, cfg.data.manifest)  # before the run folder exists
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    final = fit(DistillTask(cfg, out), out, resume=resume, overwrite=overwrite, callbacks=callbacks)
    if final.get("stopped_by") == "signal":
        raise KeyboardInterrupt(f"stopped by a signal after checkpointing step {final['step']}")
    return final
