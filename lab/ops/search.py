"""Search mode: measure each candidate operator per stage on the target device and keep the fastest
one whose swapped decoder stays within a quality budget.

Greedy, stage by stage, slowest stage first (by the measured time of the current plan): for each
candidate, the decoder with the plan so far plus that candidate in this stage is built from the
teacher, its stage latency is measured (synchronised stage hooks, median of ``repeats``) and its
output is compared with the unswapped decoder's on the given latents. Errors therefore accumulate
over stages, and the budget bounds the error of the final plan, not of each stage alone.
"""

from __future__ import annotations

import logging
import math
import statistics

import torch

from lab.arch import arch_of
from lab.errors import ConfigError
from lab.ops.plan import resolve_plan
from lab.ops.profiler import _Hooks, _sync_for
from lab.ops.swap import stage_modules, swap_decoder

log = logging.getLogger("lab")

DEFAULT_CANDIDATES = ("keep", "dwsep3d", "conv2plus1d", "conv2d")


@torch.no_grad()
def stage_seconds(decoder, z: torch.Tensor, repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median seconds per stage over ``repeats`` decodes of ``z`` (after ``warmup`` decodes)."""
    sync = _sync_for(decoder.device)
    stages = stage_modules(decoder)
    for _ in range(warmup):
        decoder.decode(z)
    runs = []
    for _ in range(repeats):
        hooks = _Hooks(stages, sync, with_ops=False)
        try:
            decoder.decode(z)
            sync()
        finally:
            hooks.remove()
        runs.append({s: hooks.time.get(("stage", s), 0.0) for s in stages})
    return {s: statistics.median(r[s] for r in runs) for s in stages}


def output_error(out: torch.Tensor, ref: torch.Tensor) -> dict:
    """Relative RMSE and PSNR (video in [-1, 1], so peak-to-peak 2) of ``out`` against ``ref``."""
    diff = (out.float() - ref.float())
    mse = float(diff.pow(2).mean())
    rel = float(diff.norm() / ref.float().norm().clamp_min(1e-12))
    psnr = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)
    return {"rel_err": rel, "psnr_db": psnr}


def search_plan(decoder, latents: torch.Tensor, candidates=DEFAULT_CANDIDATES, stages=None,
                max_rel_err: float | None = 0.1, min_psnr_db: float | None = None, repeats: int = 3,
                base: str | dict = "keep") -> dict:
    """Pick an operator per stage for ``decoder`` (a teacher or student adapter with a ``vae``).

    ``latents``: normalised latents as ``decoder.decode`` takes them, on the target device; they are
    both the timing input and the quality reference input (and the 2D-collapse calibration).
    ``stages``: the stages to search (default: all but conv_in and head, which Flash-VAED keeps).
    """
    if max_rel_err is None and min_psnr_db is None:
        raise ConfigError("give a quality budget: max_rel_err and/or min_psnr_db.")
    arch = arch_of(decoder, "the operator search")
    n_up = arch.num_up_blocks(decoder.vae)
    plan = resolve_plan(base, arch, n_up)
    for op in candidates:
        resolve_plan({"mid": op}, arch, n_up)  # validates operator names early
    if stages is None:
        stages = [s for s in plan if s not in ("conv_in", "head")]
    else:
        resolve_plan({s: "keep" for s in stages}, arch, n_up)  # validates stage names
    reference = decoder.decode(latents)

    def ok(err):
        return ((max_rel_err is None or err["rel_err"] <= max_rel_err)
                and (min_psnr_db is None or err["psnr_db"] >= min_psnr_db))

    current, _ = swap_decoder(decoder, plan, calibration=latents)
    base_times = stage_seconds(current, latents, repeats)
    order = sorted(stages, key=lambda s: -base_times[s])
    trials = []
    for stage in order:
        measured = []
        for op in candidates:
            trial_plan = {**plan, stage: op}
            model, summary = swap_decoder(decoder, trial_plan, calibration=latents)
            err = output_error(model.decode(latents), reference)
            secs = stage_seconds(model, latents, repeats)[stage]
            row = {"stage": stage, "operator": op, "stage_seconds": secs, **err, "accepted": ok(err),
                   "params": summary["params_after"]}
            trials.append(row)
            measured.append(row)
            log.info("search %s=%s: %.4f s, rel err %.4f, %s", stage, op, secs, err["rel_err"],
                     "ok" if row["accepted"] else "over budget")
            del model
        fine = [r for r in measured if r["accepted"]]
        if fine:
            plan[stage] = min(fine, key=lambda r: r["stage_seconds"])["operator"]
    final, summary = swap_decoder(decoder, plan, calibration=latents)
    return {"plan": plan, "budget": {"max_rel_err": max_rel_err, "min_psnr_db": min_psnr_db},
            "stage_order": order, "trials": trials,
            "final": {**output_error(final.decode(latents), reference), "params": summary["params_after"],
                      "teacher_params": summary["params_before"]}}
