"""Export a trained teacher as a diffusers folder: fp16 weights, latent statistics, its provenance record and
the model card rendered from it (lab.cards).

Latent statistics: the per-channel mean and std of the encoder's posterior means over windows of
the training clips, so that normalized latents (raw - mean) / std are ~N(0, 1) like real Wan
latents. Wan keeps them in its config (``latents_mean``/``latents_std``), LTX in its buffers.
The held-out figures in the card are measured on the exported (fp16-rounded) weights.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

from lab.arch import arch_of_vae
from lab.data.clips import ClipWindows
from lab.cards import PROVENANCE_FILE, describe_machine
from lab.errors import CheckpointError
from lab.files import FolderFiles, check_output_folder, install_folder, staged_folder
from lab.teachers.card import TITLE as _CARD_TITLE  # a card's first line: marks exports made before MARKER
from lab.teachers.card import write_card
from lab.teachers.checkpoint import load_state, shipped_weights
from lab.teachers.config import TrainConfig, build_model, get_preset
from lab.teachers.data import training_clip_windows
from lab.teachers.heldout import evaluate, learning_curve
from lab.teachers.warmstart import record_history

WEIGHTS = "diffusion_pytorch_model.safetensors"
#: Written into every exported teacher folder: marks it as the lab's, so a later export may replace it.
MARKER = "lab_teacher.json"
EXPORTED = ("config.json", WEIGHTS, "README.md", PROVENANCE_FILE, MARKER)
#: What an export replaces in its folder (a user's other files there are kept); the marker goes in last.
TEACHER_FOLDER = FolderFiles(marker=MARKER, names=EXPORTED)


def is_exported_teacher(folder: Path) -> bool:
    """Whether ``folder`` holds a teacher the lab exported: its marker, or (exports made before the marker
    existed, e.g. the shipped mini teachers) only the files an export writes, with the lab's card."""
    folder = Path(folder)
    if TEACHER_FOLDER.marks(folder):
        return True
    names = {p.name for p in folder.iterdir()}
    readme = folder / "README.md"
    return names <= set(EXPORTED) and readme.is_file() and _CARD_TITLE in readme.read_text().split("\n", 1)[0]


def check_export_target(out_dir, overwrite: bool = False) -> None:
    """Raise unless a teacher may be exported into ``out_dir``: absent, empty, a teacher the lab exported,
    or ``overwrite`` (the export's files are then written into it; its other files are kept). Called before
    training starts, so a refusal comes before the minutes of training."""
    check_output_folder(
        out_dir, overwrite, is_exported_teacher, "--export-to folder",
        f"{out_dir} is not empty and holds no teacher exported by the lab (no {MARKER}); choose a new or empty "
        f"--export-to folder, or pass --overwrite to write the teacher's files ({', '.join(EXPORTED)}) into it "
        f"(its other files are kept).")


@torch.no_grad()
def latent_stats(vae, data: ClipWindows, *, frame_multiple: int, spatial_multiple: int, windows: int = 16,
                 frames: int | None = None, crop: int = 64, seed: int = 1234) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of posterior means over ``windows`` random windows (fixed seed)."""
    frames = frames or 1 + 2 * frame_multiple
    crop = crop // spatial_multiple * spatial_multiple
    gen = torch.Generator().manual_seed(seed)
    p = next(vae.parameters())
    was_training = vae.training
    vae.eval()
    zs = []
    for _ in range(windows):
        x = data.sample(1, frames, crop, gen).to(p.device, p.dtype)
        z = vae.encode(x).latent_dist.mode().float()
        zs.append(z.transpose(0, 1).flatten(1))  # (C, T*H*W)
    vae.train(was_training)
    z = torch.cat(zs, dim=1)
    return z.mean(1).tolist(), z.std(1).clamp_min(1e-4).tolist()


def set_latent_stats(vae, mean: list[float], std: list[float]) -> None:
    """Store the measured statistics where the VAE's family keeps them (Architecture.set_latent_stats)."""
    arch_of_vae(vae).set_latent_stats(vae, mean, std)


def export(vae, cfg: TrainConfig, out_dir: Path, *, data: ClipWindows | None = None, step: int, wall_s: float,
           meta: dict, eval_frames: int = 17, overwrite: bool = False, curve: list | None = None) -> dict:
    """Write ``out_dir`` (config.json, fp16 safetensors, provenance.json, README.md, the marker) and return what
    the card says. ``curve``: the run's held-out evaluations during training (lab.teachers.heldout.learning_curve). ``out_dir`` must pass ``check_export_target`` (``overwrite``: write into any folder, keeping its
    other files). The files are written into a staging folder and installed as ``lab.files.install_folder``
    does: a reader sees the old export or the new one, never a partial one."""
    check_export_target(out_dir, overwrite)
    preset = get_preset(cfg.model)
    if data is None:
        data = training_clip_windows(cfg)  # the run's own clips or dataset
    model = copy.deepcopy(vae).float().cpu().eval()
    kept = kept_latent_stats(cfg, model)
    mean, std = kept or latent_stats(model, data, frame_multiple=preset.frame_multiple,
                                     spatial_multiple=preset.spatial_multiple)
    set_latent_stats(model, mean, std)
    out_dir = Path(out_dir)
    with staged_folder(out_dir) as tmp:
        model.half().save_pretrained(tmp, safe_serialization=True)
        # Score what ships: the fp16-rounded weights, computed in float32.
        shipped = type(model).from_pretrained(tmp).float().eval()
        heldout = evaluate(shipped, preset, frames=eval_frames)
        info = {
            "model": cfg.model, "class": type(model).__name__, "config": dict(preset.config),
            "params_decoder": _params(shipped, decoder=True), "params_encoder": _params(shipped, decoder=False),
            "step": step, "wall_s": round(wall_s, 1), "s_per_step": round(wall_s / max(step, 1), 3),
            "machine": _machine(cfg, meta), "train_clips": [s.describe() for s in data.specs],
            "train_scales": list(cfg.data.short_sides), "recipe": cfg.flat(), "heldout": heldout,
            "latents_mean": [round(v, 4) for v in mean], "latents_std": [round(v, 4) for v in std],
            "latents_kept_from": cfg.init_from if kept else None,
            "command": meta.get("command"), "started": meta.get("started"), "init_from": meta.get("init_from"),
            "resumed": meta.get("resumed"), "curve": curve or [], "eval_every": cfg.eval_every,
            "curve_frames": cfg.export.eval_frames,
            "weights_bytes": os.path.getsize(tmp / WEIGHTS),
        }
        # Every run behind these weights, this one last: a warm-started teacher's minutes add up across sessions.
        info["history"] = record_history(info)
        write_card(tmp, info)
        (tmp / MARKER).write_text(json.dumps({"model": cfg.model, "step": step}) + "\n")
        install_folder(tmp, out_dir, TEACHER_FOLDER)
    return info


def kept_latent_stats(cfg: TrainConfig, model) -> tuple[list[float], list[float]] | None:
    """The latent statistics a decoder-only run (``--freeze-encoder``) exports: those of the exported teacher it
    started from. Its encoder did not change, so neither did its latent space; measuring the statistics again on
    this run's windows would move the normalised latents that every decoder of that space was trained on. None
    (measure them): a run that trains its encoder, or one that started from a run folder, whose statistics exist
    only once it is exported (export it first and start from the export)."""
    src = Path(cfg.init_from) if cfg.freeze_encoder and cfg.init_from else None
    if src is None or not (src / "config.json").is_file():
        return None
    init = type(model).from_pretrained(src)
    mean, std, _ = arch_of_vae(init).latent_stats(init)
    return mean, std


def _params(vae, decoder: bool) -> int:
    arch = arch_of_vae(vae)
    parts = arch.decoder_parts(vae) if decoder else arch.encoder_parts(vae)
    return sum(p.numel() for m in parts for p in m.parameters())


def _machine(cfg: TrainConfig, meta: dict) -> str:
    """Where the run trained, as its sessions recorded it (lab.teachers.train); a run from before that record
    is described by its configured device, never by the machine that exports it."""
    return meta.get("machine") or describe_machine(cfg.device, cfg.threads or torch.get_num_threads())


def export_run(run_dir: Path, out_dir: Path, eval_frames: int = 17, overwrite: bool = False) -> dict:
    """Export the last checkpoint of a run (what ``python -m lab teacher export`` does)."""
    check_export_target(out_dir, overwrite)
    state = load_state(Path(run_dir))
    if state is None:
        raise CheckpointError(f"{run_dir} has no training checkpoint (checkpoints/step-*); train first with "
                              f"python -m lab teacher train --run {run_dir}.")
    cfg = TrainConfig.from_dict(state["config"])
    vae = build_model(cfg)
    vae.load_state_dict(shipped_weights(state))  # the moving average of a run trained with --ema
    return export(vae, cfg, out_dir, step=state["step"], wall_s=state["wall_s"], meta=state.get("meta", {}),
                  eval_frames=eval_frames, overwrite=overwrite, curve=learning_curve(Path(run_dir)))


