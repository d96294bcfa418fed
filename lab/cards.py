"""The model card and the provenance record beside every model the lab ships, written by one writer (issue 20).

Two kinds of shipped model feed it their own sections: a teacher export (``lab.teachers.card``, written by
``python -m lab teacher export``) and a distilled student or lightweight decoder (``lab.ship``, written by
``python -m lab ship``). Each ships two files: ``provenance.json``, the machine-readable record (``provenance``:
what the model is, its teacher, data, held-out split, machine, steps and minutes, metrics per clip, the
training commands, then everything else its card says), and ``README.md``, the card rendered from that record
as written (``write_shipped``), so a card says nothing its record does not. This module owns what every card
shares, so each is written in one place:

    # NAME: TITLE
    INTRO Loaded by `LOAD`.
    - facts: what it is, parameters and stored weights, training length, machine (with the CPU caveat)
    [a bold notice]
    ## Data / ## Recipe / ... / ## Held-out reconstruction (HOW) / ## Reproduce

and the sentences both kinds say alike: the machine line, the lab's held-out split, the training-clip list,
the held-out metrics table, the reproduce block, repository-relative paths. Every number on a card comes
from the run. Code reads the record (``read_provenance``): lab.teachers.warmstart (the training commands),
lab.eval.table (a student's selection line). Folders shipped before records existed have only the card;
for them those readers parse the card, which keeps this shape (and lab.teachers.export recognises such a
teacher export by its card's title line).
"""
from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab import paths
from lab.data.heldout import BIKES_HELDOUT_START, BIKES_TRAIN_STOP
from lab.data.samples import BUNDLED, SAMPLES
from lab.errors import LabError
from lab.files import atomic_write_json, atomic_write_text
from lab.jsonio import map_strings

#: Training clips a card names one by one; a dataset of more files is summarised.
CARD_CLIPS = 12

#: The lab's own held-out split, as every card states it (lab.data.heldout holds the numbers).
LAB_SPLIT = (f"`carphone` entirely (and its distorted twin), `bikes` from frame {BIKES_HELDOUT_START} on "
             f"(training samples `bikes` frames 0-{BIKES_TRAIN_STOP - 1} only)")
#: The clips every card's held-out table scores, briefly.
LAB_HELD_OUT_CLIPS = f"`carphone`, `bikes` from frame {BIKES_HELDOUT_START}"

CPU_NOTICE = "**Trained on CPU at reduced scale**"


@dataclass
class Card:
    """One model card: the kinds fill it, ``render`` lays it out."""

    name: str
    title: str
    intro: str  # what the model is and how it was made; the card adds how to load it
    load: str  # the call that loads it, e.g. load_decoder("mini-wan")
    facts: list[str]  # the bullet list under the intro, each maybe wrapped with "\n  "
    sections: list[tuple[str, str]] = field(default_factory=list)  # (heading, body) in order
    notice: str = ""  # a bold warning between the facts and the first section

    def render(self) -> str:
        facts = "\n".join(f"- {f}" for f in self.facts)
        notice = f"\n{self.notice}\n" if self.notice else ""
        sections = "\n\n".join(f"## {heading}\n{body}" for heading, body in self.sections)
        return (f"# {self.name}: {self.title}\n\n{self.intro} Loaded by `{self.load}`.\n\n"
                f"{facts}\n{notice}\n{sections}\n")


def write_card(path: Path, card: Card) -> Path:
    """Write ``card`` to ``path`` (a README.md) atomically: a reader sees the old card or the new one."""
    return atomic_write_text(path, card.render())


# --- facts -------------------------------------------------------------------------------------------------

def parameters(params: str, dtype: str, nbytes: int) -> str:
    """The parameter count(s) and how the weights are stored."""
    return f"parameters: {params}; weights stored in {dtype}\n  ({nbytes / 1e6:.2f} MB)"


def trained(steps: str, train_s: float, s_per_step: float, started, wall_s: float | None = None) -> str:
    """How long it trained: ``steps`` (e.g. '480 steps (train 0-480)'), the training time, and the wall
    time in all when the run measured it apart from its steps."""
    if wall_s is None:
        return f"trained: {steps}, {train_s / 60:.1f} min of training\n  ({s_per_step:.2f} s/step), started {started}"
    return (f"trained: {steps}, {train_s / 60:.1f} min of training steps\n  ({s_per_step:.2f} s/step), "
            f"{wall_s / 60:.1f} min wall time in all, started {started}")


def describe_machine(device: str, threads: int | None, gpu: str | None = None) -> str:
    """The machine a model trained on, in the words every card uses; ``gpu`` names a GPU (default: the device)."""
    if str(device).startswith("cuda"):
        return gpu or f"GPU ({device})"
    return (f"CPU only ({platform.processor() or platform.machine()}, {os.cpu_count()} cores on the machine, "
            f"{threads} torch thread(s), cores shared with other jobs), float32")


def machine(description: str, cpu_caveat: str) -> str:
    """The machine fact; a CPU-trained model says it is a reduced-scale run and what a GPU run would change."""
    if description.startswith("CPU"):
        return f"machine: {description}. {CPU_NOTICE}: {cpu_caveat}"
    return f"machine: {description}."


# --- data --------------------------------------------------------------------------------------------------

def clip_list(clips: list[str], where: str = "the recipe's `clips` / `manifest`") -> str:
    """The training clips, one by one up to CARD_CLIPS; more are summarised (``where`` says where they came from)."""
    if len(clips) <= CARD_CLIPS:
        return ", ".join(clips)
    return f"{len(clips)} files, e.g. {', '.join(clips[:CARD_CLIPS // 2])} ({where} say where they came from)"


def held_out_text(clips: list | None = None, manifest: str | None = None, also: str = "") -> str:
    """What was kept out of training. The lab's own clips (``clips`` empty, or bundled and sample clip names,
    maybe with a frame range) keep the lab's split (``also`` adds to it); for a user's dataset the card says
    only what the lab can vouch for (a manifest's non-train rows), and that the table scores the lab's clips."""
    if not manifest and all(re.sub(r"\[\d*:\d*\]$", "", str(c)) in {*BUNDLED, *SAMPLES} for c in clips or ()):
        return f"Held out: {LAB_SPLIT}{also}."
    split = f"the rows of `{manifest}` whose split is not train were held out; " if manifest else ""
    return (f"Held out: {split}the table below scores the lab's held-out clips ({LAB_HELD_OUT_CLIPS}), "
            f"which the lab cannot check against this dataset: if it contains them, the figures are optimistic.")


def shown(path: Path | str) -> str:
    """``path`` relative to the repository when it is inside it: a card is read on other machines than the one
    that trained."""
    try:
        return str(Path(path).resolve().relative_to(paths.REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def unrooted(text: str) -> str:
    """``text`` with the repository's absolute prefix removed from the paths in it (e.g. a run's warnings)."""
    return text.replace(f"{paths.REPO_ROOT}/", "")


# --- held-out figures and provenance -------------------------------------------------------------------------

def heldout_section(how: str, scores: dict, reference: str | None = None, intro: str = "") -> tuple[str, str]:
    """The held-out reconstruction section: PSNR/SSIM per clip (``scores``: {clip: {frames, size, psnr, ssim}}),
    with ``reference``'s own figures beside them (``teacher_psnr``/``teacher_ssim``) when given."""
    cols = "| clip | frames | size (WxH) | PSNR (dB) | SSIM |"
    if reference:
        cols += f" {reference} PSNR | {reference} SSIM |"
    rows = []
    for clip, m in scores.items():
        row = f"| {clip} | {m['frames']} | {m['size'][1]}x{m['size'][0]} | {m['psnr']:.2f} | {m['ssim']:.4f} |"
        if reference:
            row += f" {m['teacher_psnr']:.2f} | {m['teacher_ssim']:.4f} |"
        rows.append(row)
    rule = "|" + "---|" * (cols.count("|") - 1)
    table = "\n".join([cols, rule, *rows])
    return f"Held-out reconstruction ({how})", "\n" + (f"{intro}\n\n" if intro else "") + table


def reproduce(commands: str, after: str, before: str = "") -> tuple[str, str]:
    """The Reproduce section: ``before`` (e.g. an earlier run to make first), the commands in a block, ``after``."""
    return "Reproduce", f"\n{before}```\n{commands}\n```\n{after}"


# --- the provenance record ------------------------------------------------------------------------------------

PROVENANCE_FILE = "provenance.json"
PROVENANCE_FORMAT = "lab-provenance/1"


def provenance(kind: str, info: dict, *, name: str, title: str, teacher: str | None, data: dict, held_out: str,
               machine: str, train_commands: list[str], selection: str | None = None) -> dict:
    """The record of a shipped model (``provenance.json``). Every kind states these keys alike, for machines:
    ``format``, ``kind`` ('teacher' or 'student': a distilled student or lightweight decoder), ``name``,
    ``title`` (what it is), ``teacher`` (whose latents it decodes; None for a teacher), ``data`` (what it
    trained on), ``held_out`` (the card's held-out sentence), ``machine``, ``step``, ``train_s`` and
    ``wall_s`` (seconds of training steps and in all), ``heldout`` ({clip: metrics}), ``train_commands`` (in
    order) and ``selection`` (which step's weights, for a student). The kind's own fields (``info``: all its
    card needs) follow."""
    common = {"format": PROVENANCE_FORMAT, "kind": kind, "name": name, "title": title, "teacher": teacher,
              "data": data, "held_out": held_out, "machine": machine, "step": info["step"],
              "train_s": info.get("train_s", info["wall_s"]), "wall_s": info["wall_s"], "heldout": info["heldout"],
              "train_commands": list(train_commands), "selection": selection}
    return common | {k: v for k, v in info.items() if k not in common}


def write_shipped(folder: Path, record: dict, card: Callable[[dict], Card]) -> dict:
    """Write ``record`` as ``folder/provenance.json``, then ``folder/README.md``: ``card`` (a kind's card
    builder) rendered from the record as read back from the file, so the card holds nothing the record does
    not and can be rendered again from it. Both written atomically; returns the record as read back."""
    folder = Path(folder)
    atomic_write_json(folder / PROVENANCE_FILE, _unrooted_record(record))
    written = read_provenance(folder)
    write_card(folder / "README.md", card(written))
    return written


def _unrooted_record(value):
    """``value`` with the repository's absolute prefix removed from every string in it: a record is read (and
    its card rendered again) in other checkouts than the one that shipped it."""
    return map_strings(value, unrooted)


def read_provenance(folder: str | Path) -> dict | None:
    """The provenance record in ``folder``, or None when it has none (a model shipped before records existed:
    its README.md card says the same in prose)."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LabError(f"{path} cannot be read as a provenance record ({exc}); ship the model again "
                       f"(python -m lab ship --run RUN) to rewrite it.") from None
    if not isinstance(record, dict) or record.get("format") != PROVENANCE_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise LabError(f"{path} is not a provenance record of this lab (format {found!r}, expected "
                       f"{PROVENANCE_FORMAT!r}); ship the model again (python -m lab ship --run RUN) to rewrite it.")
    return record
