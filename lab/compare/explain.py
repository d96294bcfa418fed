"""What the compare page says about what it shows: the caption under the channel figures, measured on
the figures' own data (so it cannot drift from them), and the note on operator-swapped students,
which are shown before any training.

Plain markdown strings from plain data (the stage report's dicts, kept channel lists): the app only
places them.
"""

from __future__ import annotations

import statistics

from lab.ops.plan import resolve_plan

#: mean |r| of the kept and the dropped channels closer than this reads as "about as correlated"
SAME_CORRELATION = 0.05


def main_group(rows: list[dict]) -> dict:
    """The group the heatmap's left panel draws: the stage's residual stream, else its first group
    (the rule of lab.analysis.figures.stage_figure; tests check both name the same group)."""
    return next((r for r in rows if r["group"].endswith(".stream")), rows[0])


def kept_first(report: dict, kept: list[int] | None) -> dict:
    """``report`` with its channels reordered so the ``kept`` ones come first, each part in the
    independence criterion's order: the figures then outline exactly the channels a student kept,
    whatever criterion chose them (for independence itself the order is unchanged)."""
    if kept is None:
        return report
    chosen = set(kept)
    order = report.get("selection_order") or list(range(report["width"]))
    return {**report, "selection_order": [i for i in order if i in chosen] + [i for i in order if i not in chosen]}


def _mean(values) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def figure_caption(rows: list[dict], stage: str, ratio: float, kept: dict[str, list[int]] | None = None,
                   criterion: str = "independence", explained: float | None = None) -> str:
    """Markdown under the heatmap: how to read it, with the numbers a reader should see in it.

    ``rows``: the stage's group reports (with correlation matrices), in the order the figures draw;
    ``kept``: group -> the channels the shown student kept (None: nothing is marked); ``explained``:
    the fraction of the main group's variance its kept channels explain (least squares)."""
    main = main_group(rows)
    name, width = main["group"], main["width"]
    kept = kept or {}
    indep = [v for r in rows for v in r["independence"]]
    right = (f"*Right, independence per channel* of each of {stage}'s groups: 1 - R² of predicting the channel "
             f"from all the others of its group. Dark means the channel is nearly a linear combination of the "
             f"others, the redundancy that makes pruning cheap; here the mean is {_mean(indep):.2f}.")
    if not any(r["prunable"] for r in rows):
        return (f"**How to read the channel figures.** The lab keeps every channel of {stage} (its groups are not "
                f"prunable), so nothing is marked: the figures show its channel structure only. *Left, "
                f"|correlation| between the channels of {name}* ({width}), in the independence criterion's order. "
                + right)
    chosen = kept.get(name)
    if chosen is None or len(chosen) >= width:
        marked = (f"Keep {ratio:g}: nothing of {stage} is dropped, so nothing is marked." if ratio >= 1 else
                  f"At keep {ratio:g}, {name} keeps all its {width} channels, so the left panel marks nothing; the "
                  f"ticks on the right mark the groups that are narrowed.")
        return (f"**How to read the channel figures.** {marked} Channels are in the order the independence "
                f"criterion picks them (greedy least squares: each next channel is the one that explains most of "
                f"what the ones before it leave unexplained in the whole group). *Left, |correlation| between the "
                f"channels of {name}.* " + right)
    order = main["selection_order"]
    corr = main["correlation"]
    inside, outside = order[:len(chosen)], order[len(chosen):]
    within = _mean(abs(corr[i][j]) for i in inside for j in inside if i != j)
    among_dropped = _mean(abs(corr[i][j]) for i in outside for j in outside if i != j)
    to_kept = _mean(max(abs(corr[d][i]) for i in inside) for d in outside)
    ordering = ("in the order the independence criterion picks them (greedy least squares: each next channel is "
                "the one that explains most of what the ones before it leave unexplained in the whole group)"
                if criterion == "independence" else
                f"with those the {criterion} criterion kept first, each part in the independence criterion's order")
    parts = [f"**How to read the channel figures.** Channels are shown {ordering}. Red marks what keep {ratio:g} "
             f"keeps: {len(chosen)} of {name}'s {width} channels (the box on the left, a tick per group on the "
             f"right)."]
    left = f"*Left, |correlation| between the channels of {name}.* Inside the box the mean |r| is {within:.2f}" \
        if within is not None else f"*Left, |correlation| between the channels of {name}.* One channel is kept"
    if within is not None and among_dropped is not None:
        why = ("The criterion does not pick for low pairwise correlation but for what each channel adds, given "
               "the ones picked before it, to explaining the whole group.")
        if within < among_dropped - SAME_CORRELATION:
            verdict = "the kept channels are less correlated with each other than the dropped ones are."
        elif within <= among_dropped + SAME_CORRELATION:
            verdict = "the kept channels are about as correlated with each other as the dropped ones are. " + why
        else:
            verdict = "the kept channels are more correlated with each other than the dropped ones are. " + why
        left += f", among the dropped channels {among_dropped:.2f}: {verdict}"
    else:
        left += "."
    if to_kept is not None:
        left += (f" A dropped channel's strongest |r| with a kept channel is {to_kept:.2f} on average")
        left += (f", and the kept {len(chosen)} explain {explained:.1%} of the group's variance" if explained is not None
                 else "")
        left += ": the least-squares fold rebuilds the dropped channels from them."
    parts.append(left)
    marked = [(r, set(kept[r["group"]])) for r in rows if r["group"] in kept]
    k_ind = _mean(r["independence"][i] for r, s in marked for i in s)
    d_ind = _mean(r["independence"][i] for r, s in marked for i in range(r["width"]) if i not in s)
    if k_ind is not None and d_ind is not None:
        right += f" Kept channels average {k_ind:.2f}, dropped ones {d_ind:.2f}" + (
            "." if k_ind >= d_ind else
            ": a channel's own score does not decide the pick (it says how well the others explain it, not how "
            "much of the others it explains).")
    parts.append(right)
    return "\n\n".join(parts)


def swap_note(operators: str | None, arch, num_up: int, label: str = "the student",
              distilled: list[str] = ()) -> str:
    """Markdown for a student whose operators were swapped (``operators``: a plan name or STAGE=OP
    text) but not trained; empty for no swap. ``distilled``: registered students of the same latents,
    the trained counterparts to compare with."""
    plan = {s: op for s, op in resolve_plan(operators, arch, num_up).items() if op != "keep"} if operators else {}
    if not plan:
        return ""
    by_op: dict[str, list[str]] = {}
    for stage, op in plan.items():
        by_op.setdefault(op, []).append(stage)
    swaps = "; ".join(f"{', '.join(stages)}: {op}" for op, stages in by_op.items())
    note = (f"**{label} is untrained.** Its swapped operators ({swaps}) start from the layers they replace, so "
            f"it decodes worse than the method's student will: Flash-VAED trains it by distillation from the "
            f"teacher (python -m lab distill; recipes in configs/distill/). Its speed and size are already final.")
    if distilled:
        note += (f" Distilled students of these latents: {', '.join(distilled)} (add them under 'registered "
                 f"decoders' to compare).")
    return note
