"""Every CUDA path of the lab at small shapes, one OK/FAIL line each (phase 1 of scripts/gpu/run.sh).

Each check runs in its own process (a CUDA error cannot poison the next check, and a hang is cut by
its own timeout); checks run a few at a time. ``--dry-run`` runs the same checks on the CPU.

    python scripts/gpu/smoke.py --device cuda --out $OUT/smoke       # on the GPU machine
    python scripts/gpu/smoke.py --dry-run --out /tmp/smoke            # anywhere, in about a minute
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB = [sys.executable, "-m", "lab"]


def checks(device: str, dtype: str, work: Path, dry: bool = False) -> dict[str, list[str]]:
    """name -> command. Shapes are small; every command goes through the public CLI or API. The dry run
    uses the test config of the Wan class (random weights) where the GPU uses the trained mini-wan, and
    leaves out the compile check (minutes of C++ compilation on a CPU; tests/runtime covers it)."""
    dev = ["--device", device, "--dtype", dtype]
    me = [sys.executable, str(Path(__file__).resolve())]
    teacher = ["wan2.1-tiny", "--weights", "random"] if dry else ["mini-wan"]
    size = "32x32" if dry else "64x64"
    found = {
        "decode": LAB + ["decode", "--decoder", *teacher, "--video", "bbb-128", "--frames", "9", *dev,
                         "--out", str(work / "decode.mp4"), "--json"],
        "stream": LAB + ["decode", "--decoder", *teacher, "--video", "bbb-128", "--frames", "9", "--stream",
                         *dev, "--json"],
        "chunk+fast": LAB + ["bench", "--decoders", "wan2.1-tiny,wan2.1-tiny@chunk2,wan2.1-tiny@fast",
                             "--weights", "random", "--frames", "9", "--size", size, "--repeats", "2",
                             *dev, *(["--no-memory"] if dry else []), "--json"],
        "ltx@fast": LAB + ["bench", "--decoders", "ltx-video-tiny,ltx-video-tiny@fast", "--weights", "random",
                           "--frames", "9", "--size", size, "--repeats", "2", "--no-memory", *dev, "--json"],
        "analyze": LAB + ["analyze", "--decoder", *teacher, "--frames", "9", "--size", size,
                          "--device", device, "--json"],
        "prune": LAB + ["prune", "--teacher", *teacher, "--keep", "0.25", "--frames", "9", "--size", size,
                        "--device", device, "--out", str(work / "pruned"), "--json"],
        "distill+resume": me + ["--check", "distill", "--device", device, "--dtype", dtype, "--work", str(work)],
        "teacher-train": LAB + ["teacher", "train", "--model", "wan2.1-tiny", "--run", str(work / "teacher"),
                                "--steps", "6", "--batch", "2", "--frames", "5", "--crop", "32", "--warmup", "2",
                                "--short-sides", "64", "--no-wan-clip", "--stills", "skimage", "--device", device,
                                "--json"],
        "compile": LAB + ["bench", "--decoders", "wan2.1-tiny,wan2.1-tiny@compile", "--weights", "random",
                          "--frames", "5", "--size", "32x32", "--repeats", "1", "--no-memory", *dev, "--json"],
    }
    if dry:
        del found["compile"]
    return found


def distill_check(device: str, dtype: str, work: Path) -> None:
    """20 steps of the tiny distillation (feature, pixel, temporal, perceptual and GAN losses), in bf16 on
    CUDA, interrupted at step 12 and resumed to the end."""
    from lab.distill import distill
    from lab.distill import Callback

    text = (REPO / "configs/distill/tiny.toml").read_text()
    text = text.replace("threads = 1", f'threads = 1\ndevice = "{device}"\ndtype = "{dtype}"')
    text = text.replace("max_steps = 2", "max_steps = 7").replace("start_step = 5", "start_step = 15")
    cfg = work / "distill.toml"
    cfg.write_text(text)

    class StopAt(Callback):
        def on_step(self, state):
            if state.step == 12:
                raise KeyboardInterrupt("stop for the resume check")

    out = work / "distill"
    try:
        distill(cfg, out, callbacks=[StopAt()])
        raise SystemExit("the run was not interrupted")
    except KeyboardInterrupt:
        pass
    final = distill(None, out, resume=True)
    if final["step"] != 21:
        raise SystemExit(f"resumed run ended at step {final['step']}, expected 21")
    print(json.dumps({"step": final["step"]}))


def run_all(device: str, dtype: str, out: Path, work: Path, parallel: int, timeout: float,
            dry: bool = False) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def one(item):
        name, cmd = item
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
            ok, tail = proc.returncode == 0, (proc.stderr + proc.stdout)[-3000:]
        except subprocess.TimeoutExpired as exc:
            ok, tail = False, f"timed out after {timeout:.0f} s\n{(exc.stderr or b'')[-2000:]!r}"
        row = {"check": name, "ok": ok, "seconds": round(time.monotonic() - t0, 1), "tail": tail}
        print(f"{'OK  ' if ok else 'FAIL'} {name} ({row['seconds']} s)", flush=True)
        return row

    with ThreadPoolExecutor(parallel) as pool:
        rows = list(pool.map(one, checks(device, dtype, work, dry).items()))
    (out / "smoke.json").write_text(json.dumps(rows, indent=1))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default=None, help="default bf16 on CUDA, fp32 on CPU")
    p.add_argument("--dry-run", action="store_true", help="the same checks on the CPU")
    p.add_argument("--out", default="runs/gpu/smoke", help="smoke.json goes here")
    p.add_argument("--workdir", default="runs/gpu/smoke-work", help="the checks' own files go here")
    p.add_argument("--parallel", type=int, default=3)
    p.add_argument("--timeout", type=float, default=240, help="seconds per check")
    p.add_argument("--check", help=argparse.SUPPRESS)  # internal: run one in-process check
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args()
    device = "cpu" if a.dry_run else a.device
    dtype = a.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    if a.check == "distill":
        distill_check(device, dtype, Path(a.work))
        return 0
    rows = run_all(device, dtype, Path(a.out), Path(a.workdir), a.parallel, a.timeout, a.dry_run)
    failed = [r["check"] for r in rows if not r["ok"]]
    print(f"smoke: {len(rows) - len(failed)}/{len(rows)} OK" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
