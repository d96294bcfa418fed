"""The teacher's provenance record and the sections of its model card (lab.cards), written beside exported
weights: every number comes from the run."""

from __future__ import annotations

from pathlib import Path

from lab import cards
from lab.cards import CARD_CLIPS as CARD_CLIPS  # the card's limit, named where teacher cards are tested
from lab.cards import clip_list as _clip_list
from lab.models.registry import former_names
from lab.teachers.presets import get_preset
from lab.teachers.warmstart import record_history

# Held-out PSNR from which a mini teacher is useful for pruning and distillation work (issue 3).
#: The title every teacher card carries (lab.teachers.export recognises exports by it).
TITLE = "the lab's trained mini teacher"
CPU_CAVEAT = ("small crops, few steps; a GPU run of the same command with `--device cuda` and larger\n"
              "  `--crop/--frames/--batch/--steps` will give a much better teacher.")


def write_card(folder: Path, info: dict) -> dict:
    """Write an exported teacher's ``provenance.json`` (``info``: what lab.teachers.export measured) and its
    README.md card rendered from it into ``folder``; returns the record."""
    return cards.write_shipped(folder, provenance(info), teacher_card)


def provenance(info: dict) -> dict:
    """The provenance record (lab.cards.provenance) of an exported teacher."""
    r = info["recipe"]
    return cards.provenance(
        "teacher", info, name=info["model"], title=f"{TITLE} ({info['class']})", teacher=None,
        data={"clips": info["train_clips"], "short_sides": info["train_scales"], "manifest": r.get("manifest"),
              "stills": r.get("stills")},
        held_out=_held_out_text(r), machine=info["machine"], train_commands=train_commands(info, r))


def train_commands(info: dict, r: dict) -> list[str]:
    """Every recorded command that trained it, in order: a warm start's earlier chain, then its own sessions."""
    earlier = (info.get("init_from") or {}).get("command") or ""
    return [c for c in earlier.splitlines() + _commands(info, r).splitlines() if not c.startswith("(not recorded)")]


def teacher_card(info: dict) -> cards.Card:
    """The card of an exported teacher, from its provenance record."""
    r = info["recipe"]
    return cards.Card(
        name=info["model"], title=info["title"],
        intro="Same diffusers class and latent geometry as the real model, reduced widths, trained by the lab\n"
              "as a VAE (encoder + decoder) on real video." + _former_names(info["model"]),
        load=f'load_decoder("{info["model"]}")',
        facts=[f"config: `{info['config']}`",
               cards.parameters(f"decoder {info['params_decoder'] / 1e6:.2f}M, encoder "
                                f"{info['params_encoder'] / 1e6:.2f}M", "fp16", info["weights_bytes"]),
               cards.trained(_length(info, r), info["wall_s"], info["s_per_step"], info.get("started"))
               + _in_all(info),
               cards.machine(info["machine"], CPU_CAVEAT)],
        notice=_verdict(info),
        sections=[("Data", _data(info, r)), ("Recipe", _recipe(r)),
                  cards.heldout_section("encode -> decode of the exported fp16 weights, computed in float32",
                                        info["heldout"]),
                  *_curve_section(info),
                  ("Latent statistics", _latent_stats_text(info)),
                  cards.reproduce(
                      _commands(info, r), before=_warm_start(info.get("init_from")),
                      after=f"then `python -m lab ship --run RUN` (or `python -m lab teacher export --model {info['model']} "
                            f"--run RUN --export-to data/checkpoints/{info['model']}`)\nwrites this folder from the "
                            f"run's last checkpoint. `--stop-at` reproduces a run that was exported\nbefore its "
                            f"planned last step (same schedule, cut there); CPU float results match up to summation "
                            f"order.")])


def _former_names(model: str) -> str:
    """A user who meets an old name (in a saved decoder's config, an old note) learns it is this teacher."""
    old = former_names(model)
    if not old:
        return ""
    names = ", ".join(f"`{n}`" for n in old)
    return f"\nFormerly {names}, until it became the lab's default; the old name still loads it."


def _earlier_minutes(runs: list[dict]) -> float | None:
    """Training minutes of the runs before the last of ``runs`` (None: none, or their time is unknown)."""
    earlier = runs[:-1]
    if not earlier or any(run.get("train_s") is None for run in earlier):
        return None
    return sum(run["train_s"] for run in earlier) / 60


def _in_all(info: dict) -> str:
    """The training minutes of every run behind the weights, by machine, when it took more than this run."""
    runs = record_history(info)
    if len(runs) < 2 or any(run.get("train_s") is None for run in runs):
        return ""
    by_machine: dict[str, float] = {}
    for run in runs:
        label = _machine_label(run.get("machine"))
        by_machine[label] = by_machine.get(label, 0.0) + run["train_s"] / 60
    parts = ", ".join(f"{minutes:.1f} on {label}" for label, minutes in by_machine.items())
    return f"\n  in all: {sum(by_machine.values()):.1f} min of training over {len(runs)} runs ({parts})"


def _machine_label(machine: str | None) -> str:
    """A machine's short name for the in-all line: 'CPU', or the GPU's name without its dtype note."""
    if not machine:
        return "an unrecorded machine"
    first = machine.split(";")[0]
    return "CPU" if first.startswith("CPU") else first.split(" (")[0]


def _curve_section(info: dict) -> list[tuple[str, str]]:
    """The learning curve (``--eval-every``): held-out PSNR against this run's training minutes; none without."""
    curve = info.get("curve") or []
    if not curve:
        return []
    clips = list(curve[-1]["clips"])
    runs = record_history(info)
    earlier = _earlier_minutes(runs)
    total = "" if earlier is None else "minutes in all | "
    head = f"| training minutes | {total}step | " + " | ".join(f"{c} PSNR (dB)" for c in clips) + " | mean |"
    rows = []
    for point in curve:
        psnrs = [point["clips"].get(c, {}).get("psnr") for c in clips]
        known = [v for v in psnrs if v is not None]
        minutes = point["minutes"]
        in_all = "" if earlier is None else ("| " if minutes is None else f"| {earlier + minutes:.1f} ")
        rows.append(f"| {'' if minutes is None else f'{minutes:.1f}'} {in_all}| {point['step']} | "
                    + " | ".join("" if v is None else f"{v:.2f}" for v in psnrs)
                    + f" | {sum(known) / len(known):.2f} |")
    start = "this run's warm start" if info.get("init_from") else "random weights"
    n = len(runs) - 1
    added = "" if earlier is None else \
        f"; minutes in all add the {earlier:.1f} min of the {'earlier run' if n == 1 else f'{n} earlier runs'}"
    text = (f"\nHeld-out PSNR of the model as it trained, scored every {info['eval_every']} steps on "
            f"{info['curve_frames']}-frame clips\n(float32 weights; step 0 is {start}). Minutes are this run's "
            f"training time{added}.\nThe table above scores the exported fp16 weights on its own clip lengths, so "
            f"its figures differ slightly.\n\n"
            + "\n".join([head, "|" + "---|" * (len(clips) + 3 + bool(total)), *rows]))
    return [("Learning curve", text)]


def _verdict(info: dict) -> str:
    target = get_preset(info["model"]).target_psnr
    best = max(m["psnr"] for m in info["heldout"].values())
    if target is None or best >= target:
        return ""
    return (f"**Below the lab's target of {target:.0f} dB held-out PSNR (best here {best:.1f} dB): not yet "
            f"a useful teacher for quality figures; retrain it on a GPU with the command below.**")


def _data(info: dict, r: dict) -> str:
    return (f"Training clips (random {r['crop']}x{r['crop']} crops, random {r['frames']}-frame windows,\n"
            f"horizontal flips; each clip kept at short sides {info['train_scales']}):\n"
            f"{_clip_list(info['train_clips'])}.{_photos(r)}\n{info['held_out']}")


def _recipe(r: dict) -> str:
    return (f"L1 x {r['l1_weight']} + MSE x {r['mse_weight']} + KL x {r['kl_weight']}\n"
            f"(+ LPIPS x {r['perceptual_weight']}), AdamW lr {r['lr']} ({r['warmup']} warmup steps, cosine to\n"
            f"{r['min_lr_ratio']} x lr), batch {r['batch']}, grad clip {r['grad_clip']}, seed {r['seed']}."
            f"{_recipe_notes(r)}")


def _recipe_notes(recipe: dict) -> str:
    """What the recipe line does not say: an anchored opening, a frozen encoder, a moving average."""
    notes = []
    if recipe.get("ema"):
        notes.append(f"The weights shipped (and scored) are an exponential moving average of the trained ones, decay "
                     f"{recipe['ema']:g} (ramped up as (1 + n) / (10 + n) over the first steps).")
    if recipe.get("anchor_steps"):
        notes.append(f"The first {recipe['anchor_steps']} steps are anchored (`lab.teachers.anchor`): the decoder "
                     f"decodes fixed block-mean latents and the encoder regresses them, then plain VAE training "
                     f"frees the latents.")
    if recipe.get("freeze_encoder"):
        notes.append("Decoder-only fine-tune: the encoder (and `quant_conv`) stay at the warm start's weights, so "
                     "the latent space, its statistics and every decoder trained on it are unchanged.")
    return "".join("\n" + n for n in notes)


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


def _held_out_text(r: dict) -> str:
    """What was kept out of training: the built-in clips (no ``clips``) keep the lab's split."""
    return cards.held_out_text(r.get("clips"), r.get("manifest"))


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


def _latent_stats_text(info: dict) -> str:
    if info.get("latents_kept_from"):  # a decoder-only run: its latent space is its warm start's
        return (f"`latents_mean`/`latents_std` are those of `{info['latents_kept_from']}`, which this run started from:\n"
                "its encoder was frozen (`--freeze-encoder`), so its latents, and every decoder trained on them, are "
                "unchanged.")
    return ("`latents_mean`/`latents_std` are the per-channel statistics of the encoder's posterior means\n"
            "over 16 random training windows, so normalized latents are ~N(0, 1).")
