"""What a distillation checkpoint holds and how the trainer writes and restores it (``Checkpointing``, a part
of ``lab.distill.trainer.Trainer``); how checkpoint folders are written, listed, pruned and read is
``lab.training.checkpoints``.

A checkpoint's tensors: ``student.*``, ``heads.*`` (the feature aligner), ``ema.*`` and ``disc.*`` where the run
has them. Its state: step, phase, best, the plateau and feature-weight state, both optimizers and every RNG
(the data generator of each rank, torch's, CUDA's), so a resumed run logs the same losses as an uninterrupted
one. ``best/`` and ``last/`` are saved beside the checkpoints as loadable decoder folders.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from lab.errors import CheckpointError, ConfigError
from lab.training.checkpoints import CheckpointFolder, log_set_aside, restore_checkpoint_records
from lab.training.run_folder import UNREADABLE_PREFIX

log = logging.getLogger("lab")

BEST_METRIC = "val/psnr"
#: What a readable distillation checkpoint's state must hold.
STATE_KEYS = ("step", "phase_idx", "phase_step", "optimizer", "data_rng", "torch_rng")


def checkpoint_folder(out: Path) -> CheckpointFolder:
    return CheckpointFolder(out, STATE_KEYS, weights_prefix="student.")


class Checkpointing:
    """The trainer's checkpoint methods (they read and set the trainer's state: ``self`` is the Trainer)."""

    def _state(self) -> dict:
        return {"step": self.step, "phase_idx": self.phase_idx, "phase_step": self.phase_step,
                "best": self.best, "best_step": self.best_step,
                "plateau": self.plateau.state_dict(), "decay": self.decay.state_dict() if self.decay else None,
                "optimizer": self.opt.state_dict(), "opt_d": self.opt_d.state_dict() if self.opt_d else None,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}

    def _checkpoint(self):
        gens = self.env.gather(self.gen.get_state())
        self.last_ckpt_wall = time.time()
        if not self.env.main:
            self.env.barrier()
            return
        tensors = {f"student.{k}": v for k, v in self.student.state_dict().items()}
        tensors.update({f"heads.{k}": v for k, v in self.model.aligner.state_dict().items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        if self.disc is not None:
            tensors.update({f"disc.{k}": v for k, v in self.disc.state_dict().items()})
        phase = self.cfg.phases[min(self.phase_idx, len(self.cfg.phases) - 1)].name
        final = self.ckpts.write(self.step, tensors, {**self._state(), "data_rng": gens},
                                 {"step": self.step, "phase": phase, "best_step": self.best_step})
        self._eval_model().save(self.out / "last", overwrite=True)
        is_best = self.best_step == self.step
        self.store.add_checkpoint(self.step, final, BEST_METRIC, self.best if is_best else None, is_best=is_best)
        best = self.store.best_checkpoint()
        self.ckpts.prune(self.cfg.keep_checkpoints, self.store.resolve(best.path).resolve() if best else None,
                         forget=self.store.remove_checkpoint)
        self._emit("on_checkpoint", self.step, str(final), is_best)
        self.env.barrier()

    def _load_latest_checkpoint(self):
        """Restore the newest checkpoint that can be read; rank 0 chooses, every rank loads that one."""
        picked = self._pick_checkpoint() if self.env.main else None
        path = self.env.broadcast(str(picked[0]) if picked else None)
        if path is None:
            unreadable = sorted(self.ckpts.dir.glob(UNREADABLE_PREFIX + "*"))
            if unreadable:
                # Its checkpoints exist but none can be read: starting over from step 0 would silently throw away
                # the run's training, so it is the user's call (--restart), not the resume's.
                raise CheckpointError(
                    f"no checkpoint of {self.out} can be read ({len(unreadable)} set aside as "
                    f"{', '.join(p.name for p in unreadable)}); a resume would start over from step 0. Restore a "
                    f"checkpoint, or start the run over: python -m lab distill --out {self.out} --restart")
            # Stopped before its first checkpoint: nothing to restore, so the run starts over in place (refusing
            # would leave a folder that can be neither resumed nor started again).
            if self.store:
                self.store.truncate_after(-1)  # what the stopped attempt logged is re-logged from step 0
            self._warn(f"{self.out} has no complete checkpoint yet (the run stopped before its first one); "
                       f"starting it from step 0.")
            return
        tensors, state = picked[1:] if picked else self.ckpts.read(Path(path), self.device)
        self._restore(Path(path), tensors, state)

    def _pick_checkpoint(self):
        def record(path, aside, exc):
            if self.store:
                log_set_aside(self.store, path, aside, exc)
        return self.ckpts.pick(self.device, on_unreadable=record)

    def _restore(self, path: Path, tensors: dict, state: dict):
        group = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
        try:
            self.student.load_state_dict(group("student."))
            self.model.aligner.load_state_dict(group("heads."))
            if self.ema is not None and group("ema."):
                self.ema.load_state_dict(group("ema."))
            if self.disc is not None and group("disc."):
                self.disc.load_state_dict(group("disc."))
            self.opt.load_state_dict(state["optimizer"])
            if self.opt_d is not None and state["opt_d"] is not None:
                self.opt_d.load_state_dict(state["opt_d"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path} does not match this run's student or losses ({str(exc).splitlines()[0]});"
                                  f" resume with the run's own config (drop --config).") from None
        self.step, self.phase_idx, self.phase_step = state["step"], state["phase_idx"], state["phase_step"]
        self.best, self.best_step = state["best"], state["best_step"]
        if self.phase_idx < len(self.cfg.phases):
            self._new_phase_state()
            self.plateau.load_state_dict(state["plateau"])
            if self.decay is not None and state["decay"] is not None:
                self.decay.load_state_dict(state["decay"])
        gens = state["data_rng"]
        if len(gens) != self.env.world:
            raise ConfigError(f"{path} was written by a run with {len(gens)} processes; resume it with the same "
                              f"number (torchrun --nproc_per_node={len(gens)}).")
        self.gen.set_state(gens[self.env.rank].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        self.resumed_from = str(path)
        if self.store:
            self.store.truncate_after(self.step)
            restore_checkpoint_records(self.store, path, self.step, self.best_step, self.best, BEST_METRIC)
            self.store.log_event(self.step, "resumed", {"checkpoint": str(path)})
        log.info("resumed %s from %s (step %d, phase %d)", self.out, path, self.step, self.phase_idx)
