"""Ship a distilled decoder: copy a distillation run's weights into ``data/checkpoints/<name>/`` and
write its README.md card from the run (config, store) and a fresh held-out evaluation, so the card
can be regenerated at any time and every number in it comes from code.

    python -m lab ship --run runs/lightweight/tae-64-wan \
        --config configs/lightweight/tae-64-wan.toml [--name tae-64-wan] [--weights last|best] [--fp32]

Lightweight decoders are stored in fp16 (half the size; the lab loads them back in float32); other
students (the Flash-VAED student, a few hundred KB) keep their float32 weights. ``--weights last``
(default) ships the run's last step; ``best`` its best validation step. The card says which, and
that a selection on the validation clip (carphone) makes that clip's figures slightly optimistic.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

from lab import paths
from lab.errors import LabError
from lab.eval.metrics import psnr, ssim
from lab.eval.table import heldout_videos
from lab.models import load_decoder
from lab.models.lightweight.adapter import LightweightAdapter
from lab.models.registry import get_entry, list_entries
from lab.runs.store import RunReader

HELD_OUT_TEXT = ("`carphone` entirely and `bikes` from frame 200 on (training samples `bikes` frames 0-191 only), "
                 "as for the mini teachers themselves")


def _run_info(run: Path) -> dict:
    if not (run / "store.sqlite").exists():
        raise LabError(f"{run} is not a distillation run (no store.sqlite); pass --run RUN of `python -m lab distill`.")
    with RunReader(run) as r:
        meta = r.meta()
        series = r.scalars(["perf/step_s", "val/psnr"])
        steps, val = series.get("perf/step_s", []), series.get("val/psnr", [])
        phases = [{"name": p.name, "start": p.start_step, "end": p.end_step, "reason": p.reason} for p in r.phases()]
    if meta.get("status") != "finished":
        raise LabError(f"{run} is {meta.get('status')!r}, not finished; ship a finished run (or --resume it first).")
    final = meta.get("final") or {}
    return {"config": meta["config"], "final": final, "phases": phases, "step": final.get("step"), "val_psnr": val,
            "train_s": sum(v for _, v in steps), "wall_s": float(meta["heartbeat"]) - float(meta["created"]),
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(meta["created"])))}


@torch.no_grad()
def heldout_scores(decoder_folder: Path, teacher: str, frames: int = 17) -> dict:
    """{clip: {psnr, ssim, frames, size, teacher_psnr, teacher_ssim}} of the shipped weights (in float32)."""
    tea = load_decoder(teacher, dtype=torch.float32).eval()
    dec = load_decoder(str(decoder_folder), dtype=torch.float32).eval()
    out = {}
    for name, video in heldout_videos(tea, frames).items():
        z = tea.encode(video)
        rec, ref = dec.decode(z).float().clamp(-1, 1), tea.decode(z).float().clamp(-1, 1)
        out[name] = {"psnr": round(psnr(rec, video), 3), "ssim": round(ssim(rec, video), 4),
                     "teacher_psnr": round(psnr(ref, video), 3), "teacher_ssim": round(ssim(ref, video), 4),
                     "frames": int(video.shape[2]), "size": [int(video.shape[3]), int(video.shape[4])]}
    return out


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (cards are read from the repository)."""
    try:
        return str(path.resolve().relative_to(paths.REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def _machine(cfg: dict) -> str:
    if str(cfg.get("device", "cpu")).startswith("cuda"):
        return f"GPU ({cfg['device']})"
    return (f"CPU only ({platform.processor() or platform.machine()}, {os.cpu_count()} cores on the machine "
            f"shared with other jobs, {cfg.get('threads', 1)} torch thread), float32; no GPU in this session")


def _losses(cfg: dict) -> str:
    parts = []
    for ph in cfg["phases"]:
        terms = " + ".join(f"{w:g} {k}" for k, w in ph["losses"].items())
        parts.append(f"- phase `{ph['name']}` (up to {ph['max_steps']} steps): {terms}")
    return "\n".join(parts)


def _gan_effect(cfg: dict, val: list[tuple[int, float]]) -> str:
    """What switching the GAN on did to the validation PSNR, from the run's own evaluations."""
    t0 = cfg["gan"]["start_step"]
    before = [(s, v) for s, v in val if s <= t0]
    after = [(s, v) for s, v in val if s > t0]
    if not any("gan" in ph["losses"] for ph in cfg["phases"]) or not before or not after:
        return ""
    (s0, v0), (s1, v1) = before[-1], after[-1]
    best = max(v for _, v in before)
    gan_w = max(ph["losses"].get("gan", 0) for ph in cfg["phases"])
    weight = ("weighted adaptively (gan.adaptive: scaled to the reconstruction gradient at the output layer) "
              f"from {gan_w:g}" if cfg["gan"].get("adaptive") else f"weighted {gan_w:g} against an MSE of ~0.05")
    verdict = "the GAN term costs PSNR" if v1 < best - 0.1 else "the GAN term does not cost PSNR here"
    return (f"\n\nValidation PSNR ({', '.join(cfg['data']['val_clips'])}): {v0:.2f} dB at step {s0} (last evaluation before the GAN term; best before it "
            f"{best:.2f} dB), {v1:.2f} dB at step {s1} with it. At this scale (a few hundred steps, a fresh "
            f"discriminator, hinge loss {weight}, no LPIPS) {verdict}; "
            f"the paper switches it on after 10000 steps of reconstruction training.")


def _selection(which: str, info: dict) -> str:
    cfg, final = info["config"], info["final"]
    val = ", ".join(cfg["data"]["val_clips"])
    if which == "last":
        return (f"These are the weights of the last step ({info['step']}), not of the best validation step: no "
                f"selection looked at {val}.")
    step = final.get("best_step")
    gan = cfg["gan"]["start_step"] if any("gan" in ph["losses"] for ph in cfg["phases"]) else None
    when = (f", before the GAN term switched on at step {gan}" if gan is not None and step is not None and step < gan
            else "")
    return (f"These are the weights of the run's best validation step ({step} of {info['step']}{when}; "
            f"validation PSNR {final.get('best_val_psnr', float('nan')):.2f} dB). The selection looked at {val}, "
            f"so its held-out figures below are slightly optimistic; `bikes-heldout` was never looked at.")


def write_card(folder: Path, info: dict) -> Path:
    cfg, dec, scores = info["config"], info["decoder"], info["heldout"]
    d = cfg["data"]
    o = cfg["optim"]
    rows = "\n".join(f"| {c} | {m['frames']} | {m['size'][1]}x{m['size'][0]} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
                     f"{m['teacher_psnr']:.2f} | {m['teacher_ssim']:.4f} |" for c, m in scores.items())
    # Paths as the repository names them: a card is read on other machines than the one that trained.
    root = f"{paths.REPO_ROOT}/"
    warnings = "".join(f"\n- {w.replace(root, '')}" for w in info["final"].get("warnings", []))
    gan = (f"GAN (PatchGAN, {cfg['gan']['channels']} channels, lr {cfg['gan']['lr']:g}) switched on at step "
           f"{cfg['gan']['start_step']} (Heaviside){', adaptive weight' if cfg['gan'].get('adaptive') else ''}"
           if any("gan" in ph["losses"] for ph in cfg["phases"]) else
           "no GAN term")
    phases = ", ".join(f"{p['name']} {p['start']}-{p['end']}" for p in info["phases"])
    effect = _gan_effect(cfg, info["val_psnr"])
    text = f"""# {info['name']}: {info['title']}

{info['what']} Loaded by `{info['load']}`.

- architecture: {dec['description']}
- parameters: {dec['params'] / 1e6:.3f}M (decoder); weights stored in {info['weights_dtype']}
  ({info['weights_bytes'] / 1e6:.2f} MB)
- trained: {info['step']} steps ({phases}), {info['train_s'] / 60:.1f} min of training steps
  ({info['train_s'] / max(1, info['step']):.2f} s/step), {info['wall_s'] / 60:.1f} min wall time in all, started
  {info['started']}
- machine: {_machine(cfg)}. **Trained on CPU at reduced scale because this session has no GPU**: small crops,
  batch 1, a few hundred steps instead of the paper's tens of thousands. The same command on a GPU with the
  paper's scale (256 px crops, GAN from step 10000, >= 50000 steps) will give a much better decoder.

## Data
Latents: {cfg['teacher']}'s frozen encoder, on the fly, of random {d['crop']}x{d['crop']} crops of random
{d['frames']}-frame windows (horizontal flips; clips kept at short sides {d['short_sides']}) of
{', '.join(f'`{c}`' for c in d['clips'])}.
Held out: {HELD_OUT_TEXT}. Validation during training: {', '.join(d['val_clips'])}
({d['val_frames']} frames at {d['val_size']}x{d['val_size']}).
{info['selection']}

## Recipe
{_losses(cfg)}

{gan}; AdamW lr {o['lr']:g} (betas {o['betas']}, {o['warmup_steps']} warmup steps, cosine to {o['min_lr_ratio']:g} x lr),
grad clip {o['grad_clip']:g}, EMA {'on (decay %g)' % cfg['ema']['decay'] if cfg['ema']['enabled'] else 'off'}, seed {cfg['seed']}.
Run warnings:{warnings or ' none'}{effect}

## Held-out reconstruction (the shipped weights, computed in float32)

{cfg['teacher']}'s encoder makes the latents; this decoder and {cfg['teacher']}'s own decoder decode them.

| clip | frames | size (WxH) | PSNR (dB) | SSIM | {cfg['teacher']} PSNR | {cfg['teacher']} SSIM |
|---|---|---|---|---|---|---|
{rows}

## Reproduce

```
{info['command']}
python -m lab ship --run {info['run']} --config {info['config_path']} --name {info['name']} --weights {info['which']}{' --fp32' if info['weights_dtype'] == 'float32' else ''}
```
The first command trains (CPU float results match up to summation order); the second writes this folder
from the run's {info['which']} weights and regenerates this card.
"""
    path = folder / "README.md"
    tmp = folder / ".README.md.tmp"
    tmp.write_text(text)
    tmp.replace(path)
    return path


def ship(run: str | Path, config_path: str, name: str | None = None, dest: str | Path | None = None,
         fp16: bool | None = None, frames: int = 17, which: str = "last") -> dict:
    """Copy ``run``'s ``which`` ('last' or 'best') weights to ``dest`` (default data/checkpoints/<name>)
    and write the card."""

    run = Path(run)
    info = _run_info(run)
    if which not in ("last", "best"):
        raise LabError(f"--weights must be 'last' or 'best', got {which!r}")
    last = run / which
    if not (last / "lab_decoder.json").exists():
        raise LabError(f"{run} has no saved {which} student ({last}); was it written by `python -m lab distill`?")
    name = name or run.name
    dest = Path(dest) if dest else paths.checkpoints_dir() / name
    dec = load_decoder(str(last), dtype=torch.float32)
    lightweight = isinstance(dec, LightweightAdapter)
    fp16 = lightweight if fp16 is None else fp16
    dec.name = name
    (dec.to(dtype=torch.float16) if fp16 else dec).save(dest)  # atomic: a temporary folder renamed into place
    registered = {e.name for e in list_entries()}
    if name in registered:
        description = get_entry(name).description
    elif lightweight:
        c = dec.model.config
        description = f"{type(dec.model).__name__} ({c.architecture}), widths {list(c.block_out_channels)}"
    else:
        description = (f"Flash-VAED student of {info['config']['teacher']}: pruned "
                       f"(keep={info['config']['student']['keep']}, {info['config']['student']['criterion']}) "
                       f"with the flash-vaed operator swaps, then three-phase distillation")
    weights = [p for p in dest.iterdir() if p.suffix == ".safetensors"]
    card = {
        "name": name, "run": str(run), "config_path": config_path, "config": info["config"], "final": info["final"],
        "phases": info["phases"], "val_psnr": info["val_psnr"], "step": info["step"], "train_s": info["train_s"], "wall_s": info["wall_s"],
        "started": info["started"],
        "title": (f"lightweight decoder for {info['config']['teacher']} latents" if lightweight else
                  f"Flash-VAED student of {info['config']['teacher']}"),
        "what": ("Trained from scratch against the frozen encoder (METHOD.md section 2)." if lightweight else
                 "Distilled from the teacher's decoder (METHOD.md section 1)."),
        "load": f'load_decoder("{name}")' if name in registered else f'load_decoder("{_shown(dest)}")',
        "decoder": {"description": description, "params": dec.decoder_params()},
        "weights_dtype": "fp16" if fp16 else "float32", "weights_bytes": sum(p.stat().st_size for p in weights),
        "command": f"python -m lab distill --config {config_path} --out {run} --json",
        "which": which, "selection": _selection(which, info),
        "heldout": heldout_scores(dest, info["config"]["teacher"], frames),
    }
    write_card(dest, card)
    return {k: card[k] for k in ("name", "step", "train_s", "wall_s", "weights_bytes", "heldout")} | {"folder": str(dest)}
