"""The device run (scripts/gpu) cannot rot between the sessions that have a GPU: its dry run executes
every phase on the CPU at tiny shapes, through the same scripts and lab commands the GPU run uses."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_dry_run_passes_every_phase(tmp_path, sample_clips):
    import sys
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "scripts/gpu/run.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
    out = tmp_path / "out"
    log = (out / "run.log").read_text()
    phases = dict(re.findall(r"^=== phase (\S+): rc=(\d+)", log, flags=re.M))
    assert set(phases) >= {"env", "smoke", "probe", "teachers", "bench-wan", "bench-ltx"}, log[-3000:]
    assert all(rc == "0" for rc in phases.values()), log[-5000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    smoke = json.loads((out / "smoke.json").read_text())
    assert len(smoke) == 8 and all(r["ok"] for r in smoke)
    teachers = json.loads((out / "teachers.json").read_text())
    assert {k for k in teachers if not k.startswith("_")} == {"mini-wan", "mini-ltx", "mini-ltx-ema", "mini-ltx-short"}
    # the ablations give figures only: scored, never packed for shipping
    for name in ("mini-ltx-ema", "mini-ltx-short"):
        assert teachers[name]["returncode"] == 0 and teachers[name]["export"]["heldout"]
        assert "tar" not in teachers[name] and not (out / f"{name}.tar").exists()
    for name in ("mini-wan", "mini-ltx"):
        assert teachers[name]["returncode"] == 0 and teachers[name]["export"]["heldout"]
        assert (out / f"{name}.tar").stat().st_size < 16 * 2**20
    wan = json.loads((out / "bench-wan.json").read_text())
    assert [r["decoder"].split("/")[-1] for r in wan["decoders"]] == [
        "wan2.1-tiny", "wan2.1-tiny@fast", "flash-wan", "flash-wan@fast"]
    assert wan["decoders"][2]["decoder_params"] < wan["decoders"][0]["decoder_params"]
    ltx = json.loads((out / "bench-ltx.json").read_text())
    assert len(ltx["decoders"]) == 3 and ltx["decoders"][1]["chunk"] == 1  # @fast is a no-op for LTX
    # What comes back from a device run: at most 8 files.
    assert len([p for p in out.rglob("*") if p.is_file()]) <= 8


def test_the_gpu_run_refuses_to_guess_its_phases():
    proc = subprocess.run(["bash", "scripts/gpu/run.sh"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "name the phases" in proc.stderr


@pytest.mark.slow
def test_prepare_fits_the_device_tools_size_limit():
    # What a device run sends (the tree and the carried wheels, clips and photos) must stay under 60 MiB
    # of the tool's 64: a commit that grows the tree past it would strand the next GPU session.
    import sys
    proc = subprocess.run(["bash", "scripts/gpu/prepare.sh"], cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    mib = int(re.search(r"tree \+ carry = (\d+) MiB", proc.stdout).group(1))
    assert mib <= 60
    assert (REPO / ".whl").is_dir() and list((REPO / ".whl").glob("diffusers-*.whl"))
    assert (REPO / ".gpu" / "stills.npz").stat().st_size < 4 * 2**20


@pytest.mark.slow
def test_the_perf_phase_dry_run(tmp_path):
    """Issue 29's perf phase on the CPU: kernel profiles (stage timings where no CUPTI), the bench of eager
    against @fused with their max abs error, all in one call's files."""
    import sys
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "scripts/gpu/run.sh", "--dry-run", "--phases", "env,perf"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    out = tmp_path / "out"
    log = (out / "run.log").read_text()
    phases = dict(re.findall(r"^=== phase (\S+): rc=(\d+)", log, flags=re.M))
    assert set(phases) == {"env", "perf-student", "perf-ltx", "perf-teacher", "perf-bench", "perf-bench-ltx",
                           "perf-bench-families"}, log[-3000:]
    assert all(rc == "0" for rc in phases.values()), log[-5000:]
    for name, plain in (("profile-student.json", "wan2.1-flash"), ("profile-teacher.json", "wan2.1-tiny"),
                        ("profile-ltx.json", "ltx-video-tiny")):
        prof = json.loads((out / name).read_text())
        rows = {r["decoder"]: r for r in prof["decoders"]}
        assert set(rows) == {plain, f"{plain}@fused"} | ({f"{plain}@fused+subpixel"} if plain == "wan2.1-flash" else set())
        assert all("error" not in r and r["wall_s"] > 0 and r["top_ops"] for r in rows.values())
        # no CUPTI on a CPU: stage timings instead, and the JSON says so
        assert rows[plain]["kernels"] == 0 and rows[plain]["stage_timings"] and rows[plain]["stage_timings_note"]
        assert rows[f"{plain}@fused"]["max_abs_err_vs_plain"] < 1e-4
    bench = json.loads((out / "perf-bench.json").read_text())
    rows = {r["decoder"]: r for r in bench["decoders"]}
    assert rows["wan2.1-tiny@fused"]["max_abs_err"] < 1e-4 and rows["wan2.1-flash@fused"]["max_abs_err"] < 1e-4
    assert rows["wan2.1-flash@fused+subpixel"]["max_abs_err"] < 1e-4  # float32 on the CPU: a rounding
    assert rows["wan2.1-flash@fused"]["psnr"] > 90 and rows["wan2.1-flash@fused"]["max_abs_err_vs"] == "wan2.1-flash"
    ltx = json.loads((out / "perf-bench-ltx.json").read_text())
    # float32 on the CPU: its 3D convs run oneDNN (lab.runtime.fused.conv), a rounding from eager
    assert ltx["decoders"][1]["decoder"] == "ltx-video-tiny@fused" and ltx["decoders"][1]["max_abs_err"] < 1e-4
    families = {r["decoder"]: r for r in json.loads((out / "perf-bench-families.json").read_text())["decoders"]}
    assert families["wan2.2-tiny@fused"]["max_abs_err"] < 1e-4 and families["wan2.2-tiny@fused+subpixel"]["max_abs_err"] < 1e-4
    assert families["ltx-2-tiny@fused"]["max_abs_err"] < 1e-5 and families["ltx-2-tiny@fused"]["max_abs_err_vs"] == "ltx-2-tiny"
    assert len([p for p in out.rglob("*") if p.is_file()]) <= 8
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the results page is drafted from these files: every bench row and profiled decoder is on it
    page = subprocess.run([sys.executable, "scripts/gpu/perf_report.py", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert page.returncode == 0, page.stderr[-2000:]
    for spec in [r["decoder"] for r in bench["decoders"]] + ["ltx-video-tiny@fused", "wan2.2-tiny@fused+subpixel",
                                                            "ltx-2-tiny@fused"]:
        assert f"| `{spec}` |" in page.stdout
    assert "Wan teacher: exact path" in page.stdout and "Not returned" not in page.stdout
    assert "| perf-bench-families | 0 |" in page.stdout


@pytest.mark.slow
def test_the_taef2_phase_dry_run(tmp_path, sample_clips):
    """Issue 32's real-decoder phase on the CPU (random TAEF2 weights: CI has no ../shared): selection, a timed
    distillation through the same script and options, the bench, and the page with the earlier run beside."""
    import sys
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", "scripts/gpu/run.sh", "--dry-run", "--phases", "env,taef2"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = tmp_path / "out"
    log = (out / "run.log").read_text()
    assert dict(re.findall(r"^=== phase (\S+): rc=(\d+)", log, flags=re.M)) == {"env": "0", "taef2": "0"}, log[-5000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "real-decoder-taef2.json").read_text())
    assert [d["keep"] for d in result["distilled"]] == [0.25] and result["device"] == "CPU"
    d = result["distilled"][0]
    assert d["steps"] == 3 and d["speedup"] > 0 and d["ms"] > 0 and 0 < d["retention"] < 2
    assert result["previous"]["distilled"]  # the committed run's table is kept beside the new one
    page = (out / "real-decoder-taef2.md").read_text()
    assert "## After a short distillation on the CPU" in page and "## The earlier run, for comparison" in page
    assert len([p for p in out.rglob("*") if p.is_file()]) == 3  # run.log, the page and its numbers
