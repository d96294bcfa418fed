"""Ship a trained model: ``python -m lab ship --run RUN`` writes ``data/checkpoints/<name>/``, its weights,
its provenance record (``provenance.json``) and the README.md card rendered from it (lab.cards), for every kind
of model the lab ships, so the card can be regenerated at any time and every number in it comes from code.

A distillation run (a Flash-VAED student or a lightweight decoder): its weights are copied, and the record is
written from the run (config, store) and a fresh held-out evaluation against the teacher it distilled from.

    python -m lab ship --run runs/lightweight/tae-64-wan \
        --config configs/lightweight/tae-64-wan.toml [--name tae-64-wan] [--weights last|best] [--fp32]

Lightweight decoders are stored in fp16 (half the size; the lab loads them back in float32); other
students (the Flash-VAED student, a few hundred KB) keep their float32 weights. ``--weights last``
(default) ships the run's last step; ``best`` its best validation step. The card says which, and whether
that selection looked at a held-out clip (the lab's configs validate on one that is neither trained on nor held out).

A teacher run (``python -m lab teacher train``): its last checkpoint is exported as ``python -m lab teacher
export`` does (lab.teachers.export: fp16 diffusers weights, latent statistics, the card), into
``data/checkpoints/<model>``; ``--config``, ``--weights best``, ``--fp32`` and another ``--name`` are refused.

    python -m lab ship --run runs/teachers/mini-wan [--dest FOLDER]

After a change to the card code, ``rerender`` writes a shipped folder's README.md again from its record (weights,
record and numbers untouched):

    python -m lab ship --rerender mini-wan-flash tae-64-wan | all

After its teacher is shipped again (new decoder weights, the same encoder), ``rescore`` measures a shipped student's
held-out table again, its teacher's column included; the weights stay, the record and the card say when and why:

    python -m lab ship --rescore tae-64-wan tae-temporal-64-wan
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from lab import cards, paths
from lab.data.heldout import training_stop
from lab.errors import LabError
from lab.eval.metrics import psnr, ssim
from lab.eval.table import heldout_videos
from lab.jsonio import map_strings
from lab.models import load_decoder
from lab.models.lightweight.adapter import LightweightAdapter
from lab.models.registry import get_entry, list_entries
from lab.runs.store import RunReader
from lab.teachers.card import teacher_card
from lab.teachers.export import export_run


def _kind(run: Path) -> str:
    """'distill' or 'teacher': which command made ``run`` (its run store says)."""
    if not (run / "store.sqlite").exists():
        raise LabError(f"{run} is not a run of the lab (no store.sqlite); pass --run RUN of `python -m lab distill` "
                       f"or `python -m lab teacher train` (a teacher run made before run stores: "
                       f"`python -m lab teacher export --run RUN`).")
    with RunReader(run) as r:
        return r.kind()


def _run_info(run: Path) -> dict:
    with RunReader(run) as r:
        meta = r.meta()
        series = r.scalars(["perf/step_s", "val/psnr"])
        steps, val = series.get("perf/step_s", []), series.get("val/psnr", [])
        phases = [{"name": p.name, "start": p.start_step, "end": p.end_step, "reason": p.reason} for p in r.phases()]
    if meta.get("status") != "finished":
        raise LabError(f"{run} is {meta.get('status')!r}, not finished; ship a finished run (or --resume it first).")
    final = meta.get("final") or {}
    final = _moved(final, final.get("out"), str(run.resolve()))
    return {"config": meta["config"], "final": final, "phases": phases, "step": final.get("step"), "val_psnr": val,
            "train_s": sum(v for _, v in steps), "wall_s": float(meta["heartbeat"]) - float(meta["created"]),
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(meta["created"])))}


def _moved(value, out: str | None, run: str):
    """``value`` (a run's final record) with the paths under the folder the run wrote (``out``) given under the
    folder it is shipped from (``run``, absolute): a run moved after it finished names its files where they are now."""
    if not out or Path(out).resolve() == Path(run):
        return value
    return map_strings(value, lambda s: run + s[len(out):] if s == out or s.startswith(out + "/") else s)


@torch.no_grad()
def heldout_scores(decoder_folder: Path, teacher: str, frames: int = 17, teacher_weights: str | None = None,
                   seed: int = 0) -> dict:
    """{clip: {psnr, ssim, frames, size, teacher_psnr, teacher_ssim}} of the shipped weights (in float32), on
    the latents of the teacher the run distilled from (``teacher_weights``: the run's ``teacher_weights``;
    ``seed``: the run's seed, which the trainer sets before it builds the teacher, so that a random-weight
    teacher is the very one the run distilled from)."""
    torch.manual_seed(seed)
    tea = load_decoder(teacher, weights=teacher_weights, dtype=torch.float32).eval()
    dec = load_decoder(str(decoder_folder), dtype=torch.float32).eval()
    out = {}
    for name, video in heldout_videos(tea, frames).items():
        z = tea.encode(video)
        rec, ref = dec.decode(z).float().clamp(-1, 1), tea.decode(z).float().clamp(-1, 1)
        out[name] = {"psnr": round(psnr(rec, video), 3), "ssim": round(ssim(rec, video), 4),
                     "teacher_psnr": round(psnr(ref, video), 3), "teacher_ssim": round(ssim(ref, video), 4),
                     "frames": int(video.shape[2]), "size": [int(video.shape[3]), int(video.shape[4])]}
    return out


#: a phase's own window fields (lab.distill.config.PhaseConfig) -> how the card says them
_PHASE_WINDOWS = {"frames": "{}-frame windows", "crop": "{0}x{0} crops", "batch": "batch {}"}


def _phase_windows(ph: dict) -> list[str]:
    """What a phase trains on in place of the data section's windows (its ``frames``/``crop``/``batch``)."""
    return [text.format(ph[k]) for k, text in _PHASE_WINDOWS.items() if ph.get(k) is not None]


def _losses(cfg: dict) -> str:
    parts = []
    for ph in cfg["phases"]:
        terms = " + ".join(f"{w:g} {k}" for k, w in ph["losses"].items())
        window = "; ".join([f"up to {ph['max_steps']} steps", *_phase_windows(ph)])
        parts.append(f"- phase `{ph['name']}` ({window}): {terms}")
    return "\n".join(parts)


def _gan_effect(cfg: dict, val: list[tuple[int, float]], steps: int) -> str:
    """What switching the GAN on did to the validation PSNR, from the run's own evaluations (``steps``: the run's)."""
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
    sa, va = max(after, key=lambda sv: (sv[1], -sv[0]))  # the first step at the best with it
    verdict = ("the GAN term costs PSNR by the end of the run" if v1 < best - 0.1 else
               "the GAN term does not cost PSNR here")
    return (f"\n\nValidation PSNR ({', '.join(cfg['data']['val_clips'])}): {v0:.2f} dB at step {s0} (last evaluation "
            f"before the GAN term; best before it {best:.2f} dB), {v1:.2f} dB at step {s1} with it (best with it "
            f"{va:.2f} dB at step {sa}). At this scale ({steps} steps, a fresh discriminator, hinge loss {weight}, no "
            f"LPIPS) {verdict}; the paper switches it on after 10000 steps of reconstruction training.")


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
    chosen = (f"These are the weights of the run's best validation step ({step} of {info['step']}{when}; "
              f"validation PSNR {final.get('best_val_psnr', float('nan')):.2f} dB). The selection looked at {val}")
    if not any(training_stop(str(c)) == 0 for c in cfg["data"]["val_clips"]):
        return f"{chosen}, a clip neither trained on nor held out: no selection looked at the held-out clips below."
    # older runs validated on a held-out clip (carphone)
    return f"{chosen}, so its held-out figures below are slightly optimistic; `bikes-heldout` was never looked at."


def cpu_caveat(steps: int) -> str:
    """The card's caveat for a CPU-trained decoder, with the run's own step count."""
    return (f"small crops,\n  batch 1, {steps} steps instead of the paper's tens of thousands. The same command on a "
            "GPU with the\n  paper's scale (256 px crops, GAN from step 10000, >= 50000 steps) will give a much "
            "better decoder.")


def machine(cfg: dict) -> str:
    """The machine a distillation run trained on, as its config says."""
    return cards.describe_machine(cfg.get("device", "cpu"), cfg.get("threads", 1))


def provenance(info: dict) -> dict:
    """The provenance record (lab.cards.provenance) of a shipped student or lightweight decoder (``info``: what
    ``ship`` gathered)."""
    d = info["config"]["data"]
    return cards.provenance(
        "student", info, name=info["name"], title=info["title"], teacher=info["config"]["teacher"],
        data={k: d.get(k) for k in ("clips", "manifest", "cache", "val_clips")}, held_out=_held_out(d),
        machine=info["machine"], train_commands=[info["command"]], selection=info["selection"])


def student_card(info: dict) -> cards.Card:
    """The card of a shipped student or lightweight decoder, from its provenance record."""
    cfg, dec = info["config"], info["decoder"]
    phases = ", ".join(f"{p['name']} {p['start']}-{p['end']}" for p in info["phases"])
    return cards.Card(
        name=info["name"], title=info["title"], intro=info["what"], load=info["load"],
        facts=[f"architecture: {dec['description']}",
               cards.parameters(f"{dec['params'] / 1e6:.3f}M (decoder)", info["weights_dtype"], info["weights_bytes"]),
               cards.trained(f"{info['step']} steps ({phases}){_after_warm_start(info)}", info["train_s"],
                             info["train_s"] / max(1, info["step"]), info["started"], wall_s=info["wall_s"]),
               cards.machine(info["machine"], cpu_caveat(info["step"]))],
        sections=[("Data", _data(cfg, info["held_out"], info["selection"])), ("Recipe", _recipe(info)),
                  cards.heldout_section(
                      "the shipped weights, computed in float32", info["heldout"], reference=cfg["teacher"],
                      intro=f"{cfg['teacher']}'s encoder makes the latents; this decoder and {cfg['teacher']}'s own "
                            f"decoder decode them.{_rescored(info)}"),
                  cards.reproduce(
                      f"{info['command']}\n{ship_command(info)}",
                      after=f"The first command trains (CPU float results match up to summation order); the second "
                            f"writes this folder\nfrom the run's {info['which']} weights and regenerates this card.",
                      before=_warm_start_text(info))])


def ship_command(record: dict) -> str:
    """The ``python -m lab ship`` command that wrote a shipped student (``record``: its provenance record)."""
    return (f"python -m lab ship --run {record['run']} --config {record['config_path']} --name {record['name']} "
            f"--weights {record['which']}{' --fp32' if record['weights_dtype'] == 'float32' else ''}")


def warm_start(student: dict) -> dict | None:
    """What a run's student started from when it was a shipped decoder's own weights (``student``: the config's
    ``student`` table with a ``folder`` and no ``weights = "random"``): the folder, and from its record the step, and
    the commands that made it, its own warm start included. None for a student built from the teacher or trained
    from scratch. Read at ship time, before a new ship replaces that folder. ``step`` is the length of that run,
    ``weights_step`` the step its shipped weights are (its best validation step, when it shipped that)."""
    folder = student.get("folder")
    if not folder or student.get("weights") is not None:
        return None  # built by prune + swap, from random weights, or from weights the config names
    path = shipped_folder(folder)
    record = cards.read_provenance(path) if path.is_dir() else None
    if record is None:
        return {"folder": cards.shown(path), "name": folder, "step": None, "commands": [], "init_from": None}
    best = record.get("which") == "best" and record.get("final", {}).get("best_step") is not None
    return {"folder": cards.shown(path), "name": record["name"], "step": record["step"],
            "weights_step": record["final"]["best_step"] if best else record["step"],
            "started": record.get("started"), "commands": [*record["train_commands"], ship_command(record)],
            "init_from": record.get("init_from")}


def _weights_step(init: dict) -> str:
    """Which step of its run a warm start's weights are: 'step 2350 of its 2400-step run'."""
    at = init.get("weights_step", init["step"])
    return f"step {at} of its run" if at == init["step"] else f"step {at} of its {init['step']}-step run"


def _after_warm_start(info: dict) -> str:
    """The trained line's word on the steps before this run, or ''."""
    init = info.get("init_from")
    if not init or init.get("step") is None:
        return ""
    return f", after the {init.get('weights_step', init['step'])} steps of `{init['name']}` it started from"


def _fine_tuned(init: dict | None, what: str) -> str:
    """The card's opening words (``what`` the decoder is), for a run that started from a shipped decoder's weights
    preceded by what it was fine-tuned from."""
    if not init:
        return what
    steps = f" ({_weights_step(init)})" if init.get("step") is not None else ""
    return (f"Fine-tuned from `{init['name']}` as shipped then{steps}; the Reproduce section gives both runs. "
            f"That decoder was {what[0].lower()}{what[1:]}")


def _warm_start_commands(init: dict | None) -> list[str]:
    """The commands that made a warm start, oldest first (its own warm start's before its own)."""
    if not init:
        return []
    return [*_warm_start_commands(init.get("init_from")), *init["commands"]]


def _warm_start_text(info: dict) -> str:
    """The card's Reproduce preamble for a warm-started student, or ''."""
    init = info.get("init_from")
    if not init:
        return ""
    what = (f"`{init['folder']}` as shipped then ({_weights_step(init)}, started {init['started']})"
            if init.get("step") is not None else f"`{init['folder']}` (a folder without a provenance record)")
    commands = _warm_start_commands(init)
    made = ("; those weights were made by:\n\n```\n" + "\n".join(commands) + "\n```\nthen:\n\n" if commands else
            "; how those weights were made was not recorded. Then:\n\n")
    return f"Warm-started from {what}{made}"


def _rescored(info: dict) -> str:
    """The card's word on a table measured again after the teacher changed (``rescore``), or ''."""
    done = info.get("rescored") or []
    if not done:
        return ""
    last, teacher = done[-1], info["config"]["teacher"]
    was = "; ".join(f"{clip} {m['psnr']:.2f} dB (teacher {m['teacher_psnr']:.2f})" for clip, m in last["before"].items())
    return (f"\nMeasured again on {last['date']} (`python -m lab ship --rescore {info['name']}`) after {teacher} was "
            f"shipped again; this\ndecoder trained (from {info['started']}) with the {teacher} of that time. "
            f"Before: {was}.")


def _held_out(d: dict) -> str:
    """What was kept out of training (the config's ``data``): a latent cache is the user's data."""
    if d.get("cache"):
        return cards.held_out_text([d["cache"]])
    return cards.held_out_text(d["clips"], d.get("manifest"), also=", as for the mini teachers themselves")


def _data(cfg: dict, held: str, selection: str) -> str:
    d, teacher = cfg["data"], cfg["teacher"]
    if d.get("cache"):  # what training read instead of the clips
        source = (f"Latents: {teacher}'s frozen encoder, run once by `python -m lab data encode` into the latent "
                  f"cache `{d['cache']}` (its index.json names the videos); random {d['crop']}x{d['crop']} crops of "
                  f"its {d['frames']}-frame windows.")
    else:
        clips = [f"`{c}`" for c in d["clips"]] + ([f"the train rows of `{d['manifest']}`"] if d.get("manifest") else [])
        clips = cards.clip_list(clips, where="the config's `data.clips` / `data.manifest`")
        source = (f"Latents: {teacher}'s frozen encoder, on the fly, of random {d['crop']}x{d['crop']} crops of "
                  f"random\n{d['frames']}-frame windows (horizontal flips; clips kept at short sides "
                  f"{d['short_sides']}) of\n{clips}.")
    overrides = [f"`{ph['name']}` on {', '.join(_phase_windows(ph))}" for ph in cfg["phases"] if _phase_windows(ph)]
    if overrides:
        source += f"\nExcept in the phases that set their own: {'; '.join(overrides)}."
    return (f"{source}\n{held} Validation during training: {', '.join(d['val_clips'])}\n({d['val_frames']} frames "
            f"at {d['val_size']}x{d['val_size']}).\n{selection}")


def _recipe(info: dict) -> str:
    cfg, o = info["config"], info["config"]["optim"]
    warnings = "".join(f"\n- {cards.unrooted(w)}" for w in info["final"].get("warnings", []))
    gan = (f"GAN (PatchGAN, {cfg['gan']['channels']} channels, lr {cfg['gan']['lr']:g}) switched on at step "
           f"{cfg['gan']['start_step']} (Heaviside){', adaptive weight' if cfg['gan'].get('adaptive') else ''}"
           if any("gan" in ph["losses"] for ph in cfg["phases"]) else
           "no GAN term")
    ema = f"on (decay {cfg['ema']['decay']:g})" if cfg["ema"]["enabled"] else "off"
    return (f"{_losses(cfg)}\n\n{gan}; AdamW lr {o['lr']:g} (betas {o['betas']}, {o['warmup_steps']} warmup steps, "
            f"cosine to {o['min_lr_ratio']:g} x lr),\ngrad clip {o['grad_clip']:g}, EMA {ema}, seed {cfg['seed']}."
            f"{_norm_stats(cfg)}{_first_frame(cfg)}\n"
            f"Run warnings:{warnings or ' none'}{_gan_effect(cfg, info['val_psnr'], info['step'])}")


def _first_frame(cfg: dict) -> str:
    weight = cfg.get("first_frame_weight", 1.0)
    if weight == 1.0:
        return ""
    return f"\nThe pixel terms weigh each window's first frame {weight:g}x (`first_frame_weight`)."


def _norm_stats(cfg: dict) -> str:
    if cfg.get("student", {}).get("norm_stats") != "frozen":
        return ""
    return ("\nBatch norms frozen (`student.norm_stats = \"frozen\"`): they normalised with the running statistics "
            "they started with and kept them; their affine weights trained.")


def ship(run: str | Path, config_path: str | None = None, name: str | None = None, dest: str | Path | None = None,
         fp16: bool | None = None, frames: int = 17, which: str = "last") -> dict:
    """Copy ``run``'s ``which`` ('last' or 'best') weights to ``dest`` (default data/checkpoints/<name>)
    and write its provenance record and card. A teacher run is exported (``ship_teacher``)."""
    run = Path(run)
    if _kind(run) == "teacher":
        return ship_teacher(run, config_path, name, dest, fp16, frames, which)
    if not config_path:
        raise LabError(f"{run} is a distillation run: pass --config, the config file it was started with (its card "
                       f"names it in the command that reproduces the run).")
    info = _run_info(run)
    if which not in ("last", "best"):
        raise LabError(f"--weights must be 'last' or 'best', got {which!r}")
    last = run / which
    if not (last / "lab_decoder.json").exists():
        raise LabError(f"{run} has no saved {which} student ({last}); was it written by `python -m lab distill`?")
    name = name or run.name
    dest = Path(dest) if dest else paths.checkpoints_dir() / name
    init = warm_start(info["config"]["student"])  # read before dest, which may be that very folder, is replaced
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
        "what": _fine_tuned(init, ("Trained from scratch against the frozen encoder: a lightweight decoder, the "
                                      "second line of work in the lab's README (TAE-192, EfficientViT/DC-AE, "
                                      "TAE-Temporal)." if lightweight else
                                      "Distilled from the teacher's decoder with Flash-VAED (ICML 2026): "
                                      "independence-aware channel pruning, cheaper operators, three-phase "
                                      "distillation (the lab's README, \"The pipeline\").")),
        "load": f'load_decoder("{name}")' if name in registered else f'load_decoder("{cards.shown(dest)}")',
        "decoder": {"description": description, "params": dec.decoder_params()},
        "weights_dtype": "fp16" if fp16 else "float32", "weights_bytes": sum(p.stat().st_size for p in weights),
        "machine": machine(info["config"]),
        "command": f"python -m lab distill --config {config_path} --out {run} --json",
        "which": which, "selection": _selection(which, info),
        "heldout": heldout_scores(dest, info["config"]["teacher"], frames, info["config"].get("teacher_weights"),
                                  info["config"].get("seed", 0)),
    } | ({"init_from": init} if init else {})
    cards.write_shipped(dest, provenance(card), student_card)
    return {k: card[k] for k in ("name", "step", "train_s", "wall_s", "weights_bytes", "heldout")} | {"folder": str(dest)}


def ship_teacher(run: Path, config_path: str | None = None, name: str | None = None, dest: str | Path | None = None,
                 fp16: bool | None = None, frames: int = 17, which: str = "last") -> dict:
    """Export a teacher run's last checkpoint with its card, as ``python -m lab teacher export`` does
    (lab.teachers.export: fp16 weights, latent statistics, the marker): the options a distillation run
    takes and a teacher's export cannot honour are refused rather than ignored."""
    refused = [opt for opt, given in (("--config (a teacher run carries its own)", config_path),
                                      ("--weights best (a teacher run keeps no best-validation weights)",
                                       which != "last"),
                                      ("--fp32 (a teacher ships in fp16)", fp16 is False)) if given]
    with RunReader(run) as r:
        model = r.meta()["config"]["model"]
    if name not in (None, model):
        refused.append(f"--name {name} (a teacher's folder is its model's name, {model}: load_decoder(\"{model}\") "
                       f"finds it there; use --dest to write elsewhere)")
    if refused:
        raise LabError(f"{run} is a teacher run; drop {'; '.join(refused)}.")
    folder = Path(dest) if dest else paths.checkpoints_dir() / model
    info = export_run(run, folder, eval_frames=frames)
    return {"name": model, "step": info["step"], "train_s": info["wall_s"], "wall_s": info["wall_s"],
            "weights_bytes": info["weights_bytes"], "heldout": info["heldout"], "folder": str(folder)}


#: The card builder of each kind of provenance record (lab.cards.provenance's ``kind``).
CARD_BUILDERS = {"student": student_card, "teacher": teacher_card}


def shipped_folder(name: str) -> Path:
    """The folder ``name`` points at: a folder path as given, else the name under data/checkpoints (it may not
    exist: callers say what is missing)."""
    path = Path(name).expanduser()
    return path if path.is_dir() else paths.checkpoints_dir() / name


def shipped_folders(names: list[str], kind: str | None = None) -> list[Path]:
    """The folders ``names`` point at: a folder path, a name under data/checkpoints, or 'all' (every folder there
    with a provenance record, of ``kind`` only when given: 'student' or 'teacher')."""
    if "all" in names:
        root = paths.checkpoints_dir()
        found = sorted(p for p in root.iterdir() if (p / cards.PROVENANCE_FILE).is_file()) if root.is_dir() else []
        found = [p for p in found if kind is None or cards.read_provenance(p).get("kind") == kind]
        if not found:
            raise LabError(f"no shipped {kind or 'model'} with a {cards.PROVENANCE_FILE} under {root}; ship one first "
                           f"(python -m lab ship --run RUN)")
        return found
    folders = [shipped_folder(n) for n in names]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise LabError(f"no shipped model folder {', '.join(missing)}; name a folder under {paths.checkpoints_dir()} "
                       f"(python -m lab models lists them), a folder path, or 'all'")
    return folders


def rescore(folder: str | Path) -> dict:
    """Measure a shipped student's held-out table again (``heldout_scores``, at the frames it was scored at) and
    write its record and card, the weights untouched: after its teacher was shipped again, the teacher's column
    (and, if the latents moved, the student's own) describes the teacher of the day. The record's ``rescored``
    lists each such date with both tables, so the card can say which teacher the student trained against."""
    folder = Path(folder)
    record = cards.read_provenance(folder)
    if record is None or record.get("kind") != "student":
        what = "has no provenance.json" if record is None else f"is a {record.get('kind')} (its scores are its own)"
        raise LabError(f"{folder} {what}; --rescore measures a shipped student or lightweight decoder again "
                       f"against its teacher (python -m lab ship --run RUN ships one)")
    frames = next(iter(record["heldout"].values()), {}).get("frames", 17)
    cfg = record["config"]
    new = heldout_scores(folder, cfg["teacher"], frames, cfg.get("teacher_weights"), cfg.get("seed", 0))
    entry = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "teacher": cfg["teacher"],
             "before": record["heldout"], "after": new}
    record = record | {"heldout": new, "rescored": [*record.get("rescored", []), entry]}
    cards.write_shipped(folder, record, student_card)
    return {"name": record["name"], "folder": str(folder), "before": entry["before"], "heldout": new}


def rerender(folder: str | Path) -> dict:
    """Write ``folder``'s README.md card again from its provenance.json, e.g. after a change to the card code.
    Only the card is written, and only when its text changes: the weights, the record and every number on the
    card stay as shipped. A folder without a record was not shipped by this lab's ``ship`` (or predates
    records) and is refused: its README.md may be the user's own."""
    folder = Path(folder)
    record = cards.read_provenance(folder)
    if record is None:
        raise LabError(f"{folder} has no {cards.PROVENANCE_FILE}, so its card cannot be rendered again; ship it "
                       f"again from its run (python -m lab ship --run RUN) to write both")
    builder = CARD_BUILDERS.get(record.get("kind"))
    if builder is None:
        raise LabError(f"{folder / cards.PROVENANCE_FILE} has kind {record.get('kind')!r}, which this lab has no card "
                       f"for ({', '.join(CARD_BUILDERS)}); ship it again (python -m lab ship --run RUN)")
    card, path = builder(record), folder / "README.md"
    old = path.read_text(encoding="utf-8") if path.is_file() else None
    changed = card.render() != old
    if changed:
        cards.write_card(path, card)
    return {"name": record["name"], "folder": str(folder), "changed": changed}
