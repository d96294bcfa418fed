"""The teacher training loop: a VAE (encoder + decoder) on random windows of real clips.

One loop, top to bottom: sample a batch of windows -> encode -> sample the posterior -> decode ->
L1 + MSE (+ a small KL, + optional LPIPS) -> AdamW step with warmup + cosine LR. During the first
``anchor_steps`` steps (``lab.teachers.anchor``) the decoder decodes fixed block-mean latents and the
encoder regresses them, so that the decoder learns to read its input before the latents are free.
Every few minutes the full training state is checkpointed (resumable) and, if asked, the weights are
exported to a diffusers folder. Logs go to the run store (``lab.runs.store``, kind 'teacher'), as distillation's
do, so teacher runs show in the dashboard beside the distillation runs; a resumed run forgets the rows logged
after its checkpoint, so each step is logged once.

What it shares with distillation is ``lab.training``: the run folder's rules (a user's folder is refused,
one writer at a time, half-written leftovers cleared on resume), checkpoint folders (``lab.teachers.checkpoint``
says what a teacher's holds; an unreadable one is set aside on resume), the warmup + cosine schedule and the
signal handling (SIGTERM / Ctrl-C: finish the step, checkpoint, stop as ``interrupted``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from lab.cards import describe_machine
from lab.data.clips import ClipWindows
from lab.data.stream import sample_windows
from lab.errors import LabError
from lab.eval.backbones import load_lpips  # raises with instructions when the weights are absent
from lab.files import atomic_write_text
from lab.progress import Progress
from lab.runs.lock import RunLock
from lab.runs.store import STORE_FILE, RunStore
from lab.teachers.anchor import anchor_latents
from lab.teachers.checkpoint import is_teacher_run, load_state, prune_checkpoints, restore_rng, rng_state, save_state
from lab.teachers.config import TrainConfig, build_model, get_preset  # noqa: F401 (build_model: tests and callers import it here)
from lab.teachers.data import training_data
from lab.teachers.export import check_export_target, export
from lab.teachers.warmstart import apply_init_weights, load_init_weights
from lab.training import schedule
from lab.training.checkpoints import log_set_aside
from lab.training.run_folder import check_run_kind, check_run_target, remove_temps
from lab.training.signals import StopOnSignal

log = logging.getLogger("lab.teachers")

# Config fields a resumed run must share with the run it resumes (the rest, e.g. how often to
# log or export, may change between sessions; 'steps' may be raised to train longer).
_FIXED_ON_RESUME = ("model", "seed", "batch", "frames", "crop", "short_sides", "wan_clip", "anchor_steps",
                    "freeze_encoder", "stills", "stills_fraction", "clips", "manifest")


def lr_at(step: int, cfg: TrainConfig, wall_s: float = 0.0) -> float:
    """The lab's schedule (``lab.training.schedule.lr_at``) over the run's steps. With ``max_minutes`` the
    cosine follows whichever budget runs out first, steps or time, so a run stopped by the clock still ends
    at the low learning rate."""
    spent = wall_s / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0
    return schedule.lr_at(step, cfg.steps, cfg.lr, cfg.warmup, cfg.min_lr_ratio, min_progress=spent)


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
    loss = cfg.l1_weight * l1 + cfg.mse_weight * mse + cfg.kl_weight * kl
    # Parts stay tensors: reading them (.item()) waits for the GPU, so the loop reads them only when it logs.
    parts = {"l1": l1.detach(), "mse": mse.detach(), "kl": kl.detach()}
    if anchored:
        anchor = F.mse_loss(mean, target)
        loss = loss + anchor
        parts["anchor"] = anchor.detach()
    if perceptual is not None:
        frames = lambda v: v.permute(0, 2, 1, 3, 4).flatten(0, 1)  # noqa: E731  (N*T, 3, H, W)
        p = perceptual(frames(rec), frames(x)).mean()
        loss = loss + cfg.perceptual_weight * p
        parts["lpips"] = p.detach()
    return loss, parts


def train(cfg: TrainConfig, run_dir: Path, *, stop_at: int | None = None, command: str | None = None,
          data: ClipWindows | None = None, overwrite_export: bool = False) -> dict:
    """Train (or resume) the run in ``run_dir`` until ``cfg.steps`` (or ``stop_at``, which simulates
    an interruption: the state is checkpointed there). Returns a summary. ``data`` replaces the
    configured training clips (tests train on the small bundled clip). One process at a time trains a
    run folder: a second one is refused (``lab.runs.lock``) instead of both writing its state."""
    cfg.validate()
    run_dir = Path(run_dir)
    if cfg.export_to:  # before the minutes of training; later exports replace the lab's own export
        check_export_target(cfg.export_to, overwrite_export)
    if not is_teacher_run(run_dir):  # a run from before run stores (a state.pt only) is the lab's folder too
        check_run_target(run_dir, flag="--run", can_overwrite=False)  # a user's folder is never written into
    check_run_kind(run_dir, "teacher", flag="--run")
    with RunLock(run_dir):
        remove_temps(run_dir)  # half-written checkpoints of a killed session
        return _train(cfg, run_dir, stop_at=stop_at, command=command, data=data)


def _train(cfg: TrainConfig, run_dir: Path, *, stop_at: int | None, command: str | None,
           data: ClipWindows | None) -> dict:
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LabError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu.")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    vae = build_model(cfg).to(device).train()
    if cfg.freeze_encoder:
        # Decoder-only: the encoder's latents (and so every decoder trained on them) stay what they were.
        for module in filter(None, (vae.encoder, getattr(vae, "quant_conv", None))):
            module.requires_grad_(False)
    trainable = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    gens = {"data": torch.Generator().manual_seed(cfg.seed), "noise": torch.Generator().manual_seed(cfg.seed + 1)}
    step, wall = 0, 0.0
    meta = {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}

    set_aside = []  # unreadable checkpoints moved aside; recorded once the store is open
    state = load_state(run_dir, set_aside=lambda path, aside, exc: set_aside.append((path, aside, exc)))
    if state is not None:
        old = TrainConfig.from_dict(state["config"])
        changed = [k for k in _FIXED_ON_RESUME if getattr(old, k) != getattr(cfg, k)]
        if changed:
            raise LabError(f"{run_dir} holds a run with different {', '.join(changed)} "
                           f"({', '.join(f'{k}={getattr(old, k)!r}' for k in changed)}); resume it with the same "
                           f"settings, or pass another --run folder to start a new run.")
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], gens)
        step, wall, meta = state["step"], state["wall_s"], state.get("meta", meta)
        sessions = [meta.get("command")] + [r["command"] for r in meta.get("resumed", [])]
        if command and command != sessions[-1]:
            # Resumed with other settings (e.g. a new --steps): the card lists each session's command.
            meta.setdefault("resumed", []).append({"command": command, "from_step": step})
        log.info("resumed %s at step %d (%.0f s trained)", run_dir, step, wall)
    elif cfg.init_from:
        weights, provenance = load_init_weights(cfg.init_from)
        apply_init_weights(vae, weights, cfg.init_from)
        meta["init_from"] = provenance  # the card names the earlier run's command
        log.info("warm start from %s (step %s)", cfg.init_from, provenance["step"])
    here = describe_machine(cfg.device, cfg.threads or torch.get_num_threads(),
                            gpu=f"{torch.cuda.get_device_name(device)} (bf16 autocast)" if device.type == "cuda" else None)
    if not meta.get("machine", "").startswith(here):  # the card says where the run trained, newest session first
        meta["machine"] = here + (f"; earlier steps on {meta['machine']}" if meta.get("machine") else "")
    run_dir.mkdir(parents=True, exist_ok=True)
    store = _open_store(run_dir, cfg, step)
    for path, aside, exc in set_aside:
        log_set_aside(store, path, aside, exc)
    atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))  # this session's settings
    try:
        return _loop(cfg, run_dir, store, vae, opt, trainable, gens, step, wall, meta, stop_at, data, device)
    except BaseException as exc:
        # Ctrl-C and SIGTERM end the loop cleanly (StopOnSignal); what arrives here is a failure.
        store.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                     error=None if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()


def _open_store(run_dir: Path, cfg: TrainConfig, step: int) -> RunStore:
    """The run's store: created with the run (config.json written with it), or reopened on resume with what
    was logged after the checkpoint forgotten (those steps are trained and logged again)."""
    if (run_dir / STORE_FILE).exists():
        store = RunStore.resume(run_dir)
        store.truncate_after(step)
        return store
    store = RunStore.create(run_dir, cfg.to_dict(), kind="teacher")
    store.start_phase(0, "train", step, "start" if step == 0 else "resumed a run made before teacher runs had a store")
    return store


def _loop(cfg, run_dir, store, vae, opt, trainable, gens, step, wall, meta, stop_at, data, device) -> dict:
    data = data or training_data(cfg)
    if device.type == "cuda":
        data.to(device)  # uint8 clips live on the GPU: windows are cut there (no per-batch host copies)
    perceptual = _perceptual(cfg, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def checkpoint():
        path = save_state(run_dir, {"config": cfg.to_dict(), "model": vae.state_dict(),
                                    "optimizer": opt.state_dict(), "rng": rng_state(gens), "step": step,
                                    "wall_s": wall, "meta": meta})
        store.add_checkpoint(step, path)
        prune_checkpoints(run_dir, forget=store.remove_checkpoint)

    end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    last_ckpt = last_export = time.monotonic()
    losses = []
    stop = StopOnSignal()  # SIGTERM/SIGINT: finish the step, checkpoint, return (resume later)
    # the steps left to this call (a --max-minutes budget may stop it sooner)
    bar = Progress("teacher train", max(0, end - step), unit="step")
    with stop, bar:
        while step < end and wall < budget_s and not stop.requested:
            t0 = time.monotonic()
            x = sample_windows(data, cfg.batch, cfg.frames, cfg.crop, gens["data"], step).to(device, non_blocking=True)
            lr = lr_at(step, cfg, wall)
            for group in opt.param_groups:
                group["lr"] = lr
            with autocast:
                loss, parts = vae_loss(vae, x, gens["noise"], cfg, perceptual, anchored=step < cfg.anchor_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            opt.step()
            step += 1
            if device.type == "cuda" and (step % cfg.log_every == 0 or step == end):
                torch.cuda.synchronize(device)  # logged step times are the GPU's, not the launch queue's
            dt = time.monotonic() - t0
            wall += dt
            losses.append(loss.detach())
            if step % cfg.log_every == 0 or step == end:
                if not torch.isfinite(loss):  # checked when logging: a per-step check would stall the GPU
                    raise LabError(f"step {step}: the loss is {loss.item()}; lower --lr (now {cfg.lr}) or resume "
                                   f"from the last checkpoint in {run_dir}.")
                values = {"train/loss": loss.item(), **{f"train/{k}": v.item() for k, v in parts.items()}}
                store.log_scalars(step, {**values, "lr": lr, "train/grad_norm": grad_norm.item(), "perf/step_s": dt,
                                         "perf/samples_per_s": cfg.batch / dt, "perf/wall_s": wall})
                log.info("step %d loss %.4f l1 %.4f lr %.2e %.2fs/step", step, values["train/loss"],
                         values["train/l1"], lr, dt)
            # the loss is read only at logged steps (reading it every step would stall a GPU)
            bar.update(note=f"loss {values['train/loss']:.4g}" if step % cfg.log_every == 0 else None)
            now = time.monotonic()
            if now - last_ckpt > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = now
            if cfg.export_to and cfg.export_minutes and now - last_export > cfg.export_minutes * 60:
                checkpoint()
                _export_now(vae, cfg, data, step, wall, meta, store)
                last_export = time.monotonic()
        checkpoint()
    losses = torch.stack(losses).float().tolist() if losses else []
    stopped_by = "signal" if stop.requested else "time" if wall >= budget_s else "steps"
    summary = {"run": str(run_dir), "model": cfg.model, "step": step, "steps": cfg.steps, "wall_s": round(wall, 1),
               "stopped_by": stopped_by, "last_loss": losses[-1] if losses else None}
    store.finish("finished" if step >= cfg.steps else "interrupted", final=summary)
    return {**summary, "losses": losses}


def _export_now(vae, cfg, data, step, wall, meta, store) -> None:
    # overwrite: train() checked the folder at its start, and a user's files in it are kept either way
    result = export(vae, cfg, Path(cfg.export_to), data=data, step=step, wall_s=wall, meta=meta,
                    eval_frames=cfg.eval_frames, overwrite=True)
    store.log_event(step, "export", {"folder": cfg.export_to, "heldout": result["heldout"]})
    vae.train()


def _perceptual(cfg: TrainConfig, device):
    if cfg.perceptual_weight <= 0:
        return None
    net = load_lpips().to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
