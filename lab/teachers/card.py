"""The README.md model card written beside exported weights: every number comes from the run."""

from __future__ import annotations

from pathlib import Path


# Held-out PSNR from which a mini teacher is useful for pruning and distillation work (issue 3).
TARGET_PSNR = {"mini-wan": 28.0, "mini-ltx": 26.0, "mini-wan-w32": 28.0, "mini-ltx-w32": 26.0}


def _recipe_notes(recipe: dict) -> str:
    """What the recipe line does not say: an anchored opening, a frozen encoder."""
    notes = []
    if recipe.get("anchor_steps"):
        notes.append(f"The first {recipe['anchor_steps']} steps are anchored (`lab.teachers.anchor`): the decoder "
                     f"decodes fixed block-mean latents and the encoder regresses them, then plain VAE training "
                     f"frees the latents.")
    if recipe.get("freeze_encoder"):
        notes.append("Decoder-only fine-tune: the encoder (and `quant_conv`) stay at the warm start's weights, so "
                     "the latent space, its statistics and every decoder trained on it are unchanged.")
    return "".join("\n" + n for n in notes)


def _machine(info: dict) -> str:
    if info["machine"].startswith("CPU"):
        return (f"{info['machine']}. **Trained on CPU at reduced scale because this session has no GPU**:\n"
                f"  small crops, few steps; a GPU run of the same command with `--device cuda` and larger\n"
                f"  `--crop/--frames/--batch/--steps` will give a much better teacher.")
    return f"{info['machine']}."


def _length(info: dict, r: dict) -> str:
    if r.get("max_minutes") and info["step"] < r["steps"]:
        return f"{info['step']} steps in its {r['max_minutes']:g}-minute budget (the LR cosine follows the clock)"
    return f"{info['step']} steps of {r['steps']} planned"


def _photos(r: dict) -> str:
    if not r.get("stills"):
        return ""
    return (f"\nPlus {r['stills_fraction']:.0%} of every batch cut from still photographs (scikit-image's bundled "
            f"photos, `{r['stills']}`) along random synthetic camera paths: pan, zoom, small roll "
            f"(`lab.data.stills`).")


#: Training clips a card names one by one; a dataset of more files is summarised.
CARD_CLIPS = 12


def _clip_list(clips: list[str]) -> str:
    if len(clips) <= CARD_CLIPS:
        return ", ".join(clips)
    return (f"{len(clips)} files, e.g. {', '.join(clips[:CARD_CLIPS // 2])} (the recipe's `clips` / `manifest` say "
            f"where they came from)")


def _held_out_text(r: dict) -> str:
    """What was kept out of training: the lab's own split for its built-in clips; for a user's dataset, only
    what the lab can vouch for (a manifest's non-train rows), and that the table scores the lab's clips."""
    if not r.get("clips") and not r.get("manifest"):
        return ("Held out: `carphone` entirely (and its distorted twin), `bikes` from frame 200 on\n"
                "(training samples frames 0-191 only).")
    split = (f"the rows of `{r['manifest']}` whose split is not train were held out; " if r.get("manifest") else "")
    return (f"Held out: {split}the table below scores the lab's held-out clips (`carphone`, `bikes` from frame 200), "
            f"which the lab cannot check against this dataset: if it contains them, the figures are optimistic.")


def write_card(path: Path, info: dict) -> None:
    r = info["recipe"]
    target = TARGET_PSNR.get(info["model"])
    best = max(m["psnr"] for m in info["heldout"].values())
    verdict = ""
    if target is not None and best < target:
        verdict = (f"\n**Below the lab's target of {target:.0f} dB held-out PSNR (best here {best:.1f} dB): not yet "
                   f"a useful teacher for quality figures; retrain it on a GPU with the command below.**\n")
    rows = "\n".join(f"| {name} | {m['frames']} | {m['size'][1]}x{m['size'][0]} | {m['psnr']:.2f} | {m['ssim']:.4f} |"
                     for name, m in info["heldout"].items())
    cmd = _commands(info, r)
    warm = _warm_start(info.get("init_from"))
    text = f"""# {info['model']}: the lab's trained mini teacher ({info['class']})

Same diffusers class and latent geometry as the real model, reduced widths, trained by the lab
as a VAE (encoder + decoder) on real video. Loaded by `load_decoder("{info['model']}")`.

- config: `{info['config']}`
- parameters: decoder {info['params_decoder'] / 1e6:.2f}M, encoder {info['params_encoder'] / 1e6:.2f}M;
  weights stored in fp16 ({info['weights_bytes'] / 1e6:.1f} MB)
- trained: {_length(info, r)}, {info['wall_s'] / 60:.1f} min of training
  ({info['s_per_step']:.2f} s/step), started {info.get('started')}
- machine: {_machine(info)}
{verdict}
## Data
Training clips (random {r['crop']}x{r['crop']} crops, random {r['frames']}-frame windows,
horizontal flips; each clip kept at short sides {info['train_scales']}):
{_clip_list(info['train_clips'])}.{_photos(r)}
{_held_out_text(r)}

## Recipe
L1 x {r['l1_weight']} + MSE x {r['mse_weight']} + KL x {r['kl_weight']}
(+ LPIPS x {r['perceptual_weight']}), AdamW lr {r['lr']} ({r['warmup']} warmup steps, cosine to
{r['min_lr_ratio']} x lr), batch {r['batch']}, grad clip {r['grad_clip']}, seed {r['seed']}.{_recipe_notes(r)}

## Held-out reconstruction (encode -> decode of the exported fp16 weights, computed in float32)

| clip | frames | size (WxH) | PSNR (dB) | SSIM |
|---|---|---|---|---|
{rows}

## Latent statistics
`latents_mean`/`latents_std` are the per-channel statistics of the encoder's posterior means
over 16 random training windows, so normalized latents are ~N(0, 1).

## Reproduce

{warm}```
{cmd}
```
then `python -m lab teacher export --model {info['model']} --run RUN --export-to data/checkpoints/{info['model']}`
writes this folder from the run's last checkpoint. `--stop-at` reproduces a run that was exported
before its planned last step (same schedule, cut there); CPU float results match up to summation order.
"""
    path.write_text(text)


def _commands(info: dict, r: dict) -> str:
    """The command of each training session that changed it (e.g. a resume with a new --steps), in
    order, each cut with --stop-at where the next one took over; the last one cut at the exported
    step when the run was stopped (by signal or exported while running) before its planned end."""
    sessions = [{"command": info.get("command"), "from_step": 0}] + list(info.get("resumed") or [])
    if not sessions[0]["command"]:
        return "(not recorded)"
    lines = []
    for i, session in enumerate(sessions):
        cmd = session["command"] or "(not recorded)"
        last = i + 1 == len(sessions)
        # A run stopped by its time budget is reproduced by the same budget (its step count varies with
        # the machine's speed); --stop-at would cut a step-scheduled rerun at a different LR.
        timed = r.get("max_minutes") and "--max-minutes" in cmd
        stop = (info["step"] if info["step"] < r["steps"] and not timed else None) if last \
            else sessions[i + 1]["from_step"]
        if stop is not None and "--stop-at" not in cmd:
            cmd += f" --stop-at {stop}"
        lines.append(cmd)
    return "\n".join(lines)


def _warm_start(init: dict | None) -> str:
    """The earlier run a warm-started run began from: reproducing it means running that one first."""
    if not init:
        return ""
    step = f" (step {init['step']})" if init.get("step") is not None else ""
    earlier = init.get("command") or "(its command was not recorded)"
    return (f"Warm-started (`--init-from {init['source']}`: model weights only; optimizer and schedule fresh) "
            f"from the weights{step} of this earlier run:\n\n```\n{earlier}\n```\nthen:\n\n")
