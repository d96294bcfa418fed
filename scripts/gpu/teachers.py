"""Train the mini teachers side by side on one GPU for a fixed time, export each, pack the exports
(phase 2 of scripts/gpu/run.sh).

Runs, all at once on the one GPU (each scores the held-out clips about once a minute: the card's learning curve;
"real clips": bigbuckbunny, bikes[:192], the Wan-generated clip and, since 2026-12-07, the registry clips city and
earth, lab.teachers.config.REGISTRY_CLIPS):
  mini-wan           real clips + photos with synthetic camera motion   -> exported, returned
  mini-ltx           real clips + photos                                -> exported, returned
  mini-ltx-ema       mini-ltx's recipe with a moving average of the weights (--ema 0.999): whether it raises
                     held-out PSNR per minute (figures only, from the same warm start)
  mini-ltx-short     the cheaper recipe the first run suggested: 9-frame 96 px windows at twice the LR, so about
                     3.5x more windows a minute: whether they raise held-out PSNR per minute (figures only, same start)
  mini-wan-nostills  real clips only: the ablation that says whether the photos help (figures only;
                     with --fresh, since it compares two runs from the same random start)
Measured on an H200 (2026-11-28): mini-wan at batch 16 x 17 x 128 x 128 is compute-bound (0.50 s/step
alone, 0.76 beside mini-ltx, 32.6 GiB); mini-ltx is light (0.04 s/step, 1.3 GiB at batch 16). Since 2026-12-07
mini-wan trains on 33-frame windows at batch 8: the same pixels a step, so about the same time and memory (not
yet measured on a GPU).
By default each run continues from the teacher already shipped in data/checkpoints (weights only), so
the minutes of successive device sessions add up; --fresh starts from random weights.
Each is ``python -m lab teacher train ... --max-minutes M --export-to ...``; the export scores the
fp16 weights on the held-out clips (carphone, bikes[200:]). Each export folder is packed into one
``$OUT/<name>.tar`` (a device run returns at most 8 files); ``$OUT/teachers.json`` has the figures.

    python scripts/gpu/teachers.py --minutes 4 --out $OUT           # on the GPU machine
    python scripts/gpu/teachers.py --dry-run --out /tmp/t            # CPU, tiny models, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# name -> (preset, extra arguments). Recipes sized for one H100/H200 shared by three runs.
GPU_RUNS = {
    # --eval-every: about one held-out score a minute (0.76 and 0.08 s/step side by side on the H200), the card's
    # learning curve
    # 33-frame windows (9 latent frames) at half the batch of the 17-frame recipe (the same pixels a step): trained
    # on 17, mini-wan fell 1.5-5 dB from frame 18 of every decode on, and 142 CPU steps on 33-frame windows
    # (decoder only) lifted frames 18-49 by 1.6 / 4.3 dB (docs/results/long-clips.md). The learning curve scores
    # 49 frames, so it sees a decode past the window; the card's table stays at 17 for comparison.
    "mini-wan": ("mini-wan", ["--batch", "{wan_batch}", "--frames", "33", "--crop", "128", "--lr", "1e-3",
                                      "--warmup", "100", "--registry-clips", "--stills", "{stills}",
                                      "--eval-every", "80", "--eval-frames", "49"]),
    "mini-ltx": ("mini-ltx", ["--batch", "{ltx_batch}", "--frames", "17", "--crop", "128", "--lr", "5e-4",
                                      "--warmup", "100", "--registry-clips", "--anchor-steps", "300",
                                      "--stills", "{stills}", "--eval-every", "750"]),
    "mini-wan-nostills": ("mini-wan", ["--batch", "{wan_batch}", "--frames", "33", "--crop", "128",
                                               "--lr", "1e-3", "--warmup", "100", "--registry-clips"]),
    # mini-ltx's recipe with a moving average of its weights, from the same warm start: whether --ema raises
    # held-out PSNR per minute (its learning curve beside mini-ltx's). LTX is light, so it costs the Wan run little.
    "mini-ltx-ema": ("mini-ltx", ["--batch", "{ltx_batch}", "--frames", "17", "--crop", "128", "--lr", "5e-4",
                                          "--warmup", "100", "--registry-clips", "--anchor-steps", "300",
                                          "--stills", "{stills}", "--eval-every", "750", "--ema", "0.999"]),
    # Shorter, smaller windows at twice the LR: more (and more varied) windows per minute for the same compute. Its
    # steps are ~3.5x faster, so it scores the held-out clips every 2,500 steps to stay about once a minute.
    "mini-ltx-short": ("mini-ltx", ["--batch", "{ltx_batch}", "--frames", "9", "--crop", "96", "--lr", "1e-3",
                                            "--warmup", "100", "--registry-clips", "--anchor-steps", "300",
                                            "--stills", "{stills}", "--eval-every", "2500"]),
}
#: runs that give figures only (compared with the run of their preset), never shipped
ABLATIONS = ("mini-wan-nostills", "mini-ltx-ema", "mini-ltx-short")
# The dry run: the same code paths on the test configs of the same classes, a few steps on the CPU.
DRY_RUNS = {
    "mini-wan": ("wan2.1-tiny", ["--batch", "2", "--frames", "5", "--crop", "32", "--warmup", "2",
                                     "--steps", "3", "--short-sides", "64", "--no-wan-clip", "--registry-clips",
                                     "--stills", "{stills}", "--eval-every", "2", "--eval-frames", "5"]),
    "mini-ltx": ("ltx-video-tiny", ["--batch", "1", "--frames", "9", "--crop", "32", "--warmup", "2",
                                        "--steps", "2", "--anchor-steps", "1", "--short-sides", "64",
                                        "--no-wan-clip", "--stills", "{stills}"]),
    "mini-ltx-ema": ("ltx-video-tiny", ["--batch", "1", "--frames", "9", "--crop", "32", "--warmup", "2",
                                            "--steps", "2", "--anchor-steps", "1", "--short-sides", "64",
                                            "--no-wan-clip", "--stills", "{stills}", "--ema", "0.9"]),
    "mini-ltx-short": ("ltx-video-tiny", ["--batch", "1", "--frames", "9", "--crop", "32", "--lr", "1e-3",
                                              "--warmup", "2", "--steps", "2", "--anchor-steps", "1", "--short-sides",
                                              "64", "--no-wan-clip", "--stills", "{stills}"]),
}


def launch(name: str, preset: str, extra: list[str], args, work: Path, device: str) -> subprocess.Popen:
    fill = {"stills": args.stills, "wan_batch": str(args.wan_batch), "ltx_batch": str(args.ltx_batch)}
    cmd = [sys.executable, "-m", "lab", "teacher", "train", "--model", preset, "--run", str(work / "runs" / name),
           "--device", device, "--max-minutes", str(args.minutes),
           "--checkpoint-minutes", "2", "--export-to", str(work / "export" / name), "--json"]
    # The clock stops a GPU run (the step count is only a bound); the dry run gives its own step count.
    cmd += [] if "--steps" in extra else ["--steps", "100000"]
    cmd += [a.format(**fill) for a in extra]
    shipped = REPO / "data" / "checkpoints" / preset
    if args.continue_shipped and (shipped / "config.json").exists():
        # A device session gives minutes, not hours: each one continues from the teacher the last one
        # shipped (weights only; the card records the chain), so training accumulates across sessions.
        cmd += ["--init-from", str(shipped)]
        if "--anchor-steps" in cmd:  # anchoring is for a fresh model: it would pull trained latents back
            i = cmd.index("--anchor-steps")
            del cmd[i:i + 2]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log = open(work / f"{name}.log", "w")
    print(f"start {name}: {' '.join(cmd[2:])}", flush=True)
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def pack(folder: Path, dest: Path) -> Path:
    tmp = dest.with_name(dest.name + ".part")
    with tarfile.open(tmp, "w") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f"{folder.name}/{f.name}")
    tmp.replace(dest)
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=4.0, help="training minutes per run (all run at once)")
    p.add_argument("--out", default="runs/gpu/out")
    p.add_argument("--work", default="runs/gpu/teachers")
    p.add_argument("--stills", default=".gpu/stills.npz", help="photos: a .npz, or 'skimage'")
    p.add_argument("--wan-batch", type=int, default=8, help="mini-wan clips a step (33-frame windows)")
    p.add_argument("--ltx-batch", type=int, default=16)
    p.add_argument("--only", help="comma-separated run names (default: all)")
    p.add_argument("--threads", type=int, default=5, help="torch CPU threads per run (the export scores on the CPU)")
    p.add_argument("--dry-run", action="store_true", help="tiny models on the CPU, a few steps")
    p.add_argument("--fresh", dest="continue_shipped", action="store_false",
                   help="start from random weights instead of the shipped data/checkpoints/<preset>")
    a = p.parse_args()
    if a.stills != "skimage" and not Path(a.stills).is_file():
        a.stills = "skimage"  # no prepared file: read scikit-image's photos directly
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    runs = DRY_RUNS if a.dry_run else GPU_RUNS
    if a.only:
        runs = {k: v for k, v in runs.items() if k in a.only.split(",")}
    device = "cpu" if a.dry_run else "cuda"
    if a.dry_run:
        a.threads = 1
    t0 = time.monotonic()
    if a.continue_shipped:
        runs = {k: v for k, v in runs.items() if not k.endswith("-nostills")}  # an ablation starts fresh
    procs = {name: launch(name, preset, extra, a, work, device) for name, (preset, extra) in runs.items()}
    summary = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate()
        row = {"returncode": proc.returncode}
        try:
            row.update(json.loads(stdout))
        except ValueError:
            row["log_tail"] = (work / f"{name}.log").read_text()[-2000:]
        export = work / "export" / name
        if proc.returncode == 0 and (export / "config.json").exists() and name not in ABLATIONS:
            row["tar"] = str(pack(export, out / f"{name}.tar"))
        summary[name] = row
        held = (row.get("export") or {}).get("heldout") or {}
        print(f"{'OK  ' if proc.returncode == 0 else 'FAIL'} {name}: step {row.get('step')} "
              + " ".join(f"{k} {v['psnr']:.2f} dB" for k, v in held.items()), flush=True)
    summary["_wall_s"] = round(time.monotonic() - t0, 1)
    (out / "teachers.json").write_text(json.dumps(summary, indent=1))
    return 0 if all(r["returncode"] == 0 for k, r in summary.items() if not k.startswith("_")) else 1


if __name__ == "__main__":
    sys.exit(main())
