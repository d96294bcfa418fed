"""Teacher training as a task of the lab's training loop: a VAE (encoder + decoder) on random windows of real
clips (``TeacherTask``; ``train`` runs it with ``lab.training.loop.fit``, which owns the run folder, store,
signals, schedule, backward, DDP under ``torchrun``, NaN policy, checkpoints and resume, as for distillation).

One step: sample a batch of windows -> encode -> sample the posterior -> decode -> L1 + MSE (+ a small KL,
+ optional LPIPS) -> the loop's AdamW update on the warmup + cosine schedule (over the run's steps, or its
``max_minutes`` when that runs out first). During the first ``anchor_steps`` steps (``lab.teachers.anchor``)
the decoder decodes fixed block-mean latents and the encoder regresses them, so that the decoder learns to
read its input before the latents are free. With ``export.to`` the weights are exported to a diffusers folder
every ``export.every_minutes`` (after a checkpoint). Logs go to the run store (kind 'teacher'), so teacher runs
show in the dashboard beside the distillation runs.

A teacher run resumes by being run again (``--run`` names an existing run): with its recorded settings that fix
what it trains (``FIXED_ON_RESUME``), from its newest readable checkpoint, or from a ``state.pt`` of the runs
made before checkpoint folders. A new run may warm-start from another run's or an export's weights
(``init_from``).
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lab.cards import describe_machine
from lab.data.clips import ClipWindows
from lab.data.dataset import check_training_data
from lab.data.heldout import HELDOUT
from lab.data.samples import sample_clip
from lab.data.stream import sample_windows
from lab.errors import LabError
from lab.eval.backbones import load_lpips  # raises with instructions when the weights are absent
from lab.runs.store import is_run
from lab.teachers.anchor import anchor_latents
from lab.teachers.checkpoint import EMA, LEGACY_STATE_FILE, MODEL, STATE_KEYS, load_legacy
from lab.teachers.config import TrainConfig, build_model, get_preset  # noqa: F401 (build_model: tests and callers import it here)
from lab.teachers.data import training_data
from lab.teachers.export import check_export_target, export
from lab.teachers.heldout import curve_metrics, learning_curve
from lab.teachers.heldout import evaluate as evaluate_heldout
from lab.teachers.warmstart import apply_init_weights, load_init_weights
from lab.training import schedule
from lab.training.loop import fit
from lab.training.task import Cadence, Objective, RunContext, Schedule, Step, Task

log = logging.getLogger("lab.teachers")

# Settings (flag names, TrainConfig.flat) a resumed run must share with the run it resumes (the rest, e.g. how
# often to log or export, may change between sessions; 'steps' may be raised to train longer).
FIXED_ON_RESUME = ("model", "seed", "batch", "frames", "crop", "short_sides", "wan_clip", "registry_clips",
                   "anchor_steps", "freeze_encoder", "stills", "stills_fraction", "clips", "manifest")


def teacher_schedule(step: int, cfg: TrainConfig, wall_s: float = 0.0) -> Schedule:
    """Where 0-based ``step`` is on the run's warmup + cosine. With ``max_minutes`` the cosine follows whichever
    budget runs out first, steps or time, so a run stopped by the clock still ends at the low learning rate."""
    spent = wall_s / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
    o = cfg.optim
    return Schedule(step, cfg.steps, o.lr, o.warmup_steps, o.min_lr_ratio, min_progress=spent)


def lr_at(step: int, cfg: TrainConfig, wall_s: float = 0.0) -> float:
    """The learning rate of 0-based ``step`` (``lab.training.schedule.lr_at`` at ``teacher_schedule``)."""
    return schedule.lr_at(*teacher_schedule(step, cfg, wall_s))


def vae_loss(vae, x: torch.Tensor, noise: torch.Generator, cfg: TrainConfig, perceptual=None,
             anchored: bool = False):
    """The step's loss and its parts. ``anchored``: decode the anchor latents instead of a posterior sample
    and add the encoder's regression onto them (``lab.teachers.anchor``)."""
    posterior = vae.encode(x).latent_dist
    mean, logvar = posterior.mean.float(), posterior.logvar.float()
    if anchored:
        preset = get_preset(cfg.model)
        target = anchor_latents(x.float(), preset.frame_multiple, preset.spatial_multiple, mean.shape[1])
        z = target.to(posterior.mean.dtype)
    else:
        z = posterior.sample(generator=noise)
    rec = vae.decode(z).sample.float()
    x = x.float()
    l1, mse = F.l1_loss(rec, x), F.mse_loss(rec, x)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    w = cfg.losses
    loss = w.l1 * l1 + w.mse * mse + w.kl * kl
    # Parts stay tensors: reading them (.item()) waits for the GPU, so the loop reads them only when it logs.
    parts = {"l1": l1.detach(), "mse": mse.detach(), "kl": kl.detach()}
    if anchored:
        anchor = F.mse_loss(mean, target)
        loss = loss + anchor
        parts["anchor"] = anchor.detach()
    if perceptual is not None:
        frames = lambda v: v.permute(0, 2, 1, 3, 4).flatten(0, 1)  # noqa: E731  (N*T, 3, H, W)
        p = perceptual(frames(rec), frames(x)).mean()
        loss = loss + w.perceptual * p
        parts["lpips"] = p.detach()
    return loss, parts


class TeacherModule(nn.Module):
    """The VAE and its loss as one module (what DDP wraps under ``torchrun``): ``forward`` is ``vae_loss``."""

    def __init__(self, vae, cfg: TrainConfig, perceptual=None):
        super().__init__()
        self.vae, self.cfg = vae, cfg
        self._perceptual = (perceptual,)  # a frozen metric, not a part of the module DDP synchronises

    def forward(self, x, noise: torch.Generator, anchored: bool = False):
        return vae_loss(self.vae, x, noise, self.cfg, self._perceptual[0], anchored=anchored)


class TeacherTask(Task):
    kind, label, flag, can_overwrite = "teacher", "teacher train", "--run", False
    weights_prefix, state_keys = MODEL, STATE_KEYS

    def __init__(self, cfg: TrainConfig, run_dir: Path, command: str | None = None, data: ClipWindows | None = None):
        self.cfg, self.out, self.command, self.given_data = cfg, Path(run_dir), command, data
        self.device = cfg.device
        self.cadence = Cadence(log_every=cfg.log_every, eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every,
                               checkpoint_minutes=cfg.checkpoint_minutes, keep_checkpoints=cfg.keep_checkpoints)
        self.wall_s = 0.0  # training time before the current step (the loop's clock, as schedule() receives it)
        self.resume_hint = "resume from it by running the same command again"
        self.restart_hint = f"point --run at another folder to start a new run (or move {self.out} away)"
        self.meta = {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        self.losses = []  # every step's loss of this session (tensors: read at the end)
        self.last_export, self.export_due = time.monotonic(), False

    def config(self) -> dict:
        return self.cfg.to_dict()

    def setup(self, run: RunContext):
        cfg, env = self.cfg, run.env
        self.run, self.dev = run, env.device
        self.vae = build_model(cfg).to(self.dev).train()
        if cfg.freeze_encoder:
            # Decoder-only: the encoder's latents (and so every decoder trained on them) stay what they were.
            for module in filter(None, (self.vae.encoder, getattr(self.vae, "quant_conv", None))):
                module.requires_grad_(False)
        self.trainable = [p for p in self.vae.parameters() if p.requires_grad]
        self.ema, self.ema_updates = None, 0  # --ema: made from the weights training starts from (begin / resume)
        o = cfg.optim
        self.opt = torch.optim.AdamW(self.trainable, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        # Each rank draws its own windows and noise (rank 0's are those of a one-process run).
        self.gens = {"data": torch.Generator().manual_seed(cfg.seed + 1000 * env.rank),
                     "noise": torch.Generator().manual_seed(cfg.seed + 1 + 1000 * env.rank)}
        self.data = self.given_data or training_data(cfg, env.rank, env.world)
        if self.dev.type == "cuda":
            self.data.to(self.dev)  # uint8 clips live on the GPU: windows are cut there (no per-batch host copies)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.dev.type == "cuda" else nullcontext()
        self._note_machine()
        return TeacherModule(self.vae, cfg, _perceptual(cfg, self.dev))

    def begin(self, step: int, restored: bool) -> None:
        if not restored and self.cfg.init_from:
            weights, provenance = load_init_weights(self.cfg.init_from)
            apply_init_weights(self.vae, weights, self.cfg.init_from)
            self.meta["init_from"] = provenance  # the card names the earlier run's command
            log.info("warm start from %s (step %s)", self.cfg.init_from, provenance["step"])
        if self.cfg.optim.ema and self.ema is None:
            self.ema = _frozen_copy(self.vae)
        self.run.emit("on_phase", step, None, "train",
                      "start" if step == 0 else "resumed a run made before teacher runs had a store")

    def _note_machine(self) -> None:
        """The card says where the run trained, newest session first."""
        cfg = self.cfg
        gpu = f"{torch.cuda.get_device_name(self.dev)} (bf16 autocast)" if self.dev.type == "cuda" else None
        here = describe_machine(cfg.device, cfg.threads or torch.get_num_threads(), gpu=gpu)
        if not self.meta.get("machine", "").startswith(here):
            self.meta["machine"] = here + (f"; earlier steps on {self.meta['machine']}" if self.meta.get("machine") else "")

    def schedule(self, step: int, wall_s: float) -> Schedule:
        self.wall_s = wall_s
        return teacher_schedule(step - 1, self.cfg, wall_s)

    def after_update(self) -> None:
        """--ema: the moving average takes a step towards the updated weights. Its decay ramps up as
        (1 + n) / (10 + n) to ``--ema``, so a short run's average is not stuck at its first weights."""
        if self.ema is None:
            return
        n = self.ema_updates
        decay = min(self.cfg.optim.ema, (1 + n) / (10 + n))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.vae.parameters()), 1.0 - decay)
            for mine, theirs in zip(self.ema.buffers(), self.vae.buffers()):
                mine.copy_(theirs)
        self.ema_updates = n + 1

    @property
    def shipped(self) -> nn.Module:
        """The model held-out scores and exports see: the moving average with ``--ema``, else the trained one."""
        return self.ema if self.ema is not None else self.vae

    def evaluate(self, step: int) -> dict | None:
        """With ``--eval-every``: the held-out clips' PSNR/SSIM of the model as it trains (float32 weights, in the
        training dtype's forward) after ``self.wall_s`` of training; the card's learning curve."""
        if not self.cfg.eval_every:
            return None
        scores = evaluate_heldout(self.shipped, get_preset(self.cfg.model), frames=self.cfg.export.eval_frames)
        minutes = 0.0 if step == 0 else self.wall_s / 60
        return curve_metrics(scores, minutes)

    def step(self, step: int, model) -> Step:
        cfg, d = self.cfg, self.cfg.data
        x = sample_windows(self.data, d.batch, d.frames, d.crop, self.gens["data"], step - 1)
        x = x.to(self.dev, non_blocking=True)
        with self.autocast:
            loss, parts = model(x, self.gens["noise"], anchored=step - 1 < cfg.anchor_steps)
        self.losses.append(loss.detach())
        scalars = {"train/loss": loss.detach(), **{f"train/{k}": v for k, v in parts.items()}}
        return Step([Objective(loss, self.opt, self.trainable, clip=cfg.optim.grad_clip)], scalars, d.batch,
                    explain=lambda: ("", f"--lr (now {cfg.optim.lr})"))

    def after_step(self, step: int, scalars: dict | None, metrics: dict | None) -> bool:
        e = self.cfg.export
        self.export_due = bool(e.to and e.every_minutes) and time.monotonic() - self.last_export > e.every_minutes * 60
        return self.export_due  # an export follows a checkpoint

    def checkpointed(self, step: int, wall_s: float) -> None:
        if not self.export_due:
            return
        # overwrite: train() checked the folder at its start, and a user's files in it are kept either way
        result = export(self.shipped, self.cfg, Path(self.cfg.export.to), data=self.data, step=step,
                        wall_s=wall_s, meta=self.meta, eval_frames=self.cfg.export.eval_frames, overwrite=True,
                        curve=learning_curve(self.out))
        self.run.store.log_event(step, "export", {"folder": self.cfg.export.to, "heldout": result["heldout"]})
        self.vae.train()
        self.last_export, self.export_due = time.monotonic(), False

    def done(self, step: int, wall_s: float) -> bool:
        return step >= self.cfg.steps or (self.cfg.max_minutes > 0 and wall_s >= self.cfg.max_minutes * 60)

    def complete(self, step: int) -> bool:
        return step >= self.cfg.steps

    def steps_left(self, step: int) -> int:
        return max(0, self.cfg.steps - step)

    def state_dict(self):
        tensors = {MODEL + k: v for k, v in self.vae.state_dict().items()}
        if self.ema is not None:
            tensors.update({EMA + k: v for k, v in self.ema.state_dict().items()})
        state = {"config": self.cfg.to_dict(), "optimizer": self.opt.state_dict(), "meta": self.meta,
                 "ema_updates": self.ema_updates}
        return tensors, state, {}

    def load_state_dict(self, tensors: dict, state: dict, path: Path) -> None:
        old, new = TrainConfig.from_dict(state["config"]).flat(), self.cfg.flat()
        changed = [k for k in FIXED_ON_RESUME if old[k] != new[k]]
        if changed:
            raise LabError(f"{self.out} holds a run with different {', '.join(changed)} "
                           f"({', '.join(f'{k}={old[k]!r}' for k in changed)}); resume it with the same "
                           f"settings, or pass another --run folder to start a new run.")
        self.vae.load_state_dict({k[len(MODEL):]: v for k, v in tensors.items() if k.startswith(MODEL)})
        self.opt.load_state_dict(state["optimizer"])
        if self.cfg.optim.ema:  # its average as checkpointed; a run resumed with --ema starts one from its weights
            self.ema = _frozen_copy(self.vae)
            averaged = {k[len(EMA):]: v for k, v in tensors.items() if k.startswith(EMA)}
            if averaged:
                self.ema.load_state_dict(averaged)
            self.ema_updates = int(state.get("ema_updates", 0)) if averaged else 0
        self.meta = state.get("meta") or self.meta
        sessions = [self.meta.get("command")] + [r["command"] for r in self.meta.get("resumed", [])]
        if self.command and self.command != sessions[-1]:
            # Resumed with other settings (e.g. a new --steps): the card lists each session's command.
            self.meta.setdefault("resumed", []).append({"command": self.command, "from_step": state["step"]})
        self._note_machine()

    def upgrade(self, state: dict) -> dict:
        """Teacher checkpoints written before the shared loop kept their generators as ``rng``."""
        if "rng" not in state:
            return state
        rng = state["rng"]
        return {**state, "torch_rng": rng["torch"], "cuda_rng": None,
                "data_rng": [{"data": rng["data"], "noise": rng["noise"]}]}

    def legacy_checkpoint(self):
        path = self.out / LEGACY_STATE_FILE
        if not path.is_file():
            return None
        state = load_legacy(path)
        return path, {MODEL + k: v for k, v in state["model"].items()}, {k: v for k, v in state.items() if k != "model"}

    def rank_state(self):
        return {k: g.get_state() for k, g in self.gens.items()}

    def load_rank_state(self, state) -> None:
        for k, g in self.gens.items():
            g.set_state(state[k].cpu())

    def final(self, step: int, wall_s: float, metrics: dict | None, signalled: bool) -> dict:
        timed = self.cfg.max_minutes > 0 and wall_s >= self.cfg.max_minutes * 60
        return {"run": str(self.out), "model": self.cfg.model, "step": step, "steps": self.cfg.steps,
                "wall_s": round(wall_s, 1), "stopped_by": "signal" if signalled else "time" if timed else "steps",
                "last_loss": float(self.losses[-1]) if self.losses else None}


def _frozen_copy(vae: nn.Module) -> nn.Module:
    """A copy of ``vae`` that takes no gradients (the moving average of its weights)."""
    ema = copy.deepcopy(vae).eval()
    ema.requires_grad_(False)
    return ema


def train(cfg: TrainConfig, run_dir: Path, *, stop_at: int | None = None, command: str | None = None,
          data: ClipWindows | None = None, overwrite_export: bool = False) -> dict:
    """Train (or resume: a run in ``run_dir`` is continued) until ``cfg.steps`` (or ``stop_at``, which simulates
    an interruption: the state is checkpointed there). Returns the final summary and ``losses``, every step's
    loss of this session. ``data`` replaces the configured training clips (tests train on the small bundled
    clip). One process at a time trains a run folder: a second one is refused (``lab.runs.lock``)."""
    cfg.validate()
    run_dir = Path(run_dir)
    if data is None:
        check_training_data(cfg.data.clips, cfg.data.manifest)  # held-out content through a path: before the run folder
    if cfg.export.to:  # before the minutes of training; later exports replace the lab's own export
        check_export_target(cfg.export.to, overwrite_export)
    if cfg.eval_every:  # the held-out clips the learning curve scores: fetched (or refused) before the training
        for clip in HELDOUT:
            sample_clip(clip.clip)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise LabError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu.")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pre_store = (run_dir / LEGACY_STATE_FILE).is_file() and not is_run(run_dir)
    task = TeacherTask(cfg, run_dir, command=command, data=data)
    final = fit(task, run_dir, resume=is_run(run_dir) or pre_store, stop_at=stop_at, pre_store=pre_store)
    losses = torch.stack(task.losses).float().tolist() if task.losses else []
    return {**final, "losses": losses}


def _perceptual(cfg: TrainConfig, device):
    if cfg.losses.perceptual <= 0:
        return None
    net = load_lpips().to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
