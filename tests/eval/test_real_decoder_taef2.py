"""scripts/real_decoder_taef2.py: the committed results page is what its numbers render to, and a device run
reuses the table before training only from a run with the same clips, frames and weights."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "real_decoder_taef2.py"
RESULTS = REPO / "docs" / "results" / "real-decoder-taef2.json"


def test_the_committed_page_is_its_numbers_rendered(tmp_path):
    out = tmp_path / "page.md"
    subprocess.run([sys.executable, str(SCRIPT), "--render", str(RESULTS), "--out", str(out)], check=True, cwd=REPO,
                   timeout=120)
    assert out.read_text() == RESULTS.with_suffix(".md").read_text()


@pytest.mark.slow
def test_reuse_selection_refuses_a_run_that_differs(tmp_path, sample_clips):
    # random weights and 2 held-out frames: neither the committed run's weights nor its 17 frames
    proc = subprocess.run([sys.executable, str(SCRIPT), "--weights", "random", "--frames", "2", "--calib-frames", "2",
                           "--steps", "0", "--threads", "1", "--previous", str(RESULTS), "--reuse-selection",
                           "--out", str(tmp_path / "page.md")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and not (tmp_path / "page.md").exists()
    msg = proc.stderr.strip().splitlines()[-1]
    assert msg.startswith("--reuse-selection: the --previous run differs in") and "held_out_frames" in msg
    assert "teacher_psnr_real" in msg and "Traceback" not in proc.stderr


@pytest.mark.shared
@pytest.mark.slow
def test_reuse_selection_takes_the_committed_table_for_the_real_weights(tmp_path, shared_assets, sample_clips):
    weights = shared_assets / "weights" / "taef2"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--weights", str(weights), "--steps", "0", "--threads", "2",
                           "--previous", str(RESULTS), "--reuse-selection", "--out", str(tmp_path / "page.md")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json
    result, committed = json.loads((tmp_path / "page.json").read_text()), json.loads(RESULTS.read_text())
    assert result["selection"] == committed["selection"] and result["selection_from"] == committed["date"]
    assert "From the run of" in (tmp_path / "page.md").read_text()
