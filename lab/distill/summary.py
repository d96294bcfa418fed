"""The end of a distillation run: what it returns and stores as ``final`` (where its students are, the
best validation PSNR, and the history of its phases as the run store recorded them)."""

from __future__ import annotations

from pathlib import Path

from lab.runs.store import RunReader


def phase_history(out: Path, best_metric: str) -> tuple[list[dict], dict]:
    """(phases, initial): each phase with its start and end steps and why it started and ended, and the
    undistilled student's step-0 values of ``best_metric`` and val/retention."""
    with RunReader(out) as r:
        first = {k: v for k, v in r.scalars([best_metric, "val/retention"]).items()}
        phases = r.phases()
        # The store keeps why each phase *started*; a phase ended for the reason the next one started
        # with (the last one: its phase_end event, or the run's end).
        ends = r.events("phase_end")
        last_end = ends[-1].get("reason") if ends else None
        history = [{"name": p.name, "start": p.start_step, "end": p.end_step, "started_because": p.reason,
                    "ended_because": phases[i + 1].reason if i + 1 < len(phases) else last_end}
                   for i, p in enumerate(phases)]
    initial = {k: v[0][1] for k, v in first.items() if v and v[0][0] == 0}
    return history, initial
