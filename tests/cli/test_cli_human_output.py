"""Every CLI command once without --json: the human-readable output (each command's render()) is
what a user sees, and a render() that reads a key the result no longer has ends a successful run in
a traceback and exit 1 (distill did). The runs are shared with test_cli_no_network (conftest.py)."""

import json

import pytest

from lab.cli import COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"app"}))  # app starts servers: tests/apps
def test_human_readable_output(command, human_runs):
    r = human_runs[command]
    assert "Traceback" not in r["stderr"], r["stderr"]
    assert r["rc"] == 0, r["stderr"][-2000:]
    assert r["stdout"].strip(), f"{command} printed nothing"
    with pytest.raises(ValueError):  # a render() wrote it, not the JSON fallback
        json.loads(r["stdout"])


def test_distill_render_names_why_phases_ended():
    from lab.cli.distill import render
    result = {"out": "runs/x", "step": 6, "best": "runs/x/best", "best_step": 4, "best_val_psnr": 21.5,
              "metrics": {"val/psnr": 21.0, "val/vmaf": None},
              "phases": [{"name": "align", "start": 0, "end": 2, "started_because": "start",
                          "ended_because": "max_steps (2)"},
                         {"name": "joint", "start": 2, "end": 6, "started_because": "max_steps (2)",
                          "ended_because": None}],
              "warnings": ["perceptual loss disabled: ..."]}
    text = render(result)
    assert "best val PSNR 21.50 dB at step 4" in text and "val/vmaf=None" in text
    assert "phase align: steps 0..2 (started: start; ended: max_steps (2))" in text
    assert "phase joint: steps 2..6 (started: max_steps (2); ended: run end)" in text
    assert "no validation PSNR yet" in render({**result, "best_val_psnr": None})
