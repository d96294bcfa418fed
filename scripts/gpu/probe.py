"""The teachers' real training recipe for a few steps each: seconds per step and peak GPU memory, so the
batch sizes of the timed teacher phase can be chosen by measurement (scripts/gpu/run.sh --phases probe).

    python scripts/gpu/probe.py --out $OUT          # on the GPU machine
    python scripts/gpu/probe.py --dry-run --out /tmp/p
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from lab.runs.store import RunReader
from lab.teachers.config import TrainConfig
from lab.teachers.train import train


def probe(model: str, batch: int, frames: int, crop: int, steps: int, device: str, stills: str, **kw) -> dict:
    cfg = TrainConfig.from_flags(model=model, steps=steps, batch=batch, frames=frames, crop=crop, warmup=2, device=device,
                      stills=stills, log_every=1, checkpoint_minutes=60, wan_clip=False, **kw)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run")
        with RunReader(Path(tmp) / "run") as r:
            logged = r.scalars(["perf/step_s", "train/loss"])
    times = [v for _, v in logged["perf/step_s"]]
    steady = sorted(times[2:]) or times[-1:]
    return {"model": model, "batch": batch, "frames": frames, "crop": crop, "steps": steps,
            "s_per_step_median": steady[len(steady) // 2], "total_s": round(time.monotonic() - t0, 1),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
            "last_loss": round(logged["train/loss"][-1][1], 6)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/gpu/out")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--stills", default=".gpu/stills.npz")
    a = p.parse_args()
    stills = a.stills if Path(a.stills).is_file() else "skimage"
    if a.dry_run:
        plan = [("wan2.1-tiny", 2, 5, 32), ("ltx-video-tiny", 1, 9, 32)]
        device, steps, extra = "cpu", 3, {"threads": 1, "short_sides": (64,)}
    else:
        # mini-wan's recipe (33-frame windows at batch 8) and twice its batch, mini-ltx's
        plan = [("mini-wan", 8, 33, 128), ("mini-ltx", 16, 17, 128), ("mini-wan", 16, 33, 128)]
        device, steps, extra = "cuda", 12, {}
    rows = []
    for model, batch, frames, crop in plan:
        try:
            row = probe(model, batch, frames, crop, steps, device, stills, **extra)
        except Exception as exc:  # noqa: BLE001  (one failed probe must not hide the others)
            row = {"model": model, "batch": batch, "error": f"{type(exc).__name__}: {exc}"[:500]}
        print(json.dumps(row), flush=True)
        rows.append(row)
        if device == "cuda":
            torch.cuda.empty_cache()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "probe.json").write_text(json.dumps(rows, indent=1))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
