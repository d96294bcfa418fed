"""``distill(config, out, resume=False, callbacks=(), overwrite=False)``: one distillation run as a process
sees it. It reads the config, joins the process group (``torchrun``), takes the run folder's lock (one
writer per run, lab.runs.lock via lab.training.run_folder), turns SIGTERM during setup into an interrupt
(in the loop the trainer finishes the step and checkpoints it first; the run is marked ``interrupted`` and
resumes from its last checkpoint) and runs the trainer's loop."""

from __future__ import annotations

from pathlib import Path

import torch

from lab.distill.config import load_config
from lab.distill.distributed import DistEnv
from lab.training.run_folder import open_run_folder, run_config
from lab.distill.trainer import Trainer
from lab.data.dataset import check_training_data
from lab.errors import ConfigError
from lab.training.signals import signals_interrupt


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
    env = DistEnv(cfg.device)
    try:
        lock = open_run_folder(out, resume, overwrite) if env.main else None
    except BaseException:
        env.close()
        raise
    try:
        with signals_interrupt():
            return Trainer(cfg, out, resume, callbacks, env).fit()
    finally:
        if lock is not None:
            lock.release()
        env.close()
