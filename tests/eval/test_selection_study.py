"""scripts/selection_study.py: each validation clip selects the first step at its highest PSNR (as the trainer keeps
its best), the selections read only their own column, and the committed study's selections are its rows'."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "results" / "selection-study.json"


@pytest.fixture(scope="module")
def mod(repo_script):
    return repo_script("scripts/selection_study.py")


ROWS = [  # step, two validation clips, two held-out clips
    {"step": 0, "val/a": 10.0, "val/b": 9.0, "heldout/x": 8.0, "heldout/y": 8.0},
    {"step": 50, "val/a": 14.0, "val/b": 11.0, "heldout/x": 12.0, "heldout/y": 12.0},
    {"step": 100, "val/a": 14.0, "val/b": 12.5, "heldout/x": 13.0, "heldout/y": 14.0},
    {"step": 150, "val/a": 13.0, "val/b": 13.0, "heldout/x": 12.5, "heldout/y": 12.5},
]
for r in ROWS:
    r["heldout/mean"] = (r["heldout/x"] + r["heldout/y"]) / 2


def test_each_clip_selects_the_first_step_at_its_highest_validation_psnr(mod):
    s = mod.selections(ROWS, ["a", "b"], ["x", "y"])
    assert (s["val=a"]["step"], s["val=b"]["step"]) == (50, 150)  # a ties at 50 and 100: the first, as the trainer
    assert s["val=mean"]["step"] == 100 and s["last"]["step"] == 150 and s["oracle"]["step"] == 100
    assert s["val=a"] == {"how": "best validation PSNR on a", "step": 50, "x": 12.0, "y": 12.0, "mean": 12.0}
    # a selection reads its own validation column only: the held-out figures cannot move it
    moved = [dict(r, **{"heldout/x": 30.0, "heldout/mean": 21.0}) if r["step"] == 150 else r for r in ROWS]
    assert mod.selections(moved, ["a"], ["x", "y"])["val=a"]["step"] == 50


def test_rank_agreement_is_spearman_over_the_later_steps(mod):
    assert mod.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0 and mod.spearman([1, 2, 3], [3, 2, 1]) == -1.0
    a = mod.agreement(ROWS, ["a", "b"])  # steps from 150 / 4 on: 50, 100, 150
    assert (a["from_step"], a["steps"]) == (50, 3)
    assert a["val=b"] == round(mod.spearman([11.0, 12.5, 13.0], [12.0, 13.5, 12.5]), 3) == 0.5


def test_the_committed_study_selections_are_its_rows(mod):
    if not RESULTS.is_file():
        pytest.skip("docs/results/selection-study.json is not committed")
    for run in json.loads(RESULTS.read_text())["runs"]:
        vals = [k[len("val/"):] for k in run["rows"][0] if k.startswith("val/")]
        assert run["selections"] == mod.selections(run["rows"], vals, list(run["teacher_heldout"])), run["run"]
        assert run["agreement"] == mod.agreement(run["rows"], vals), run["run"]
        steps = [r["step"] for r in run["rows"]]
        assert steps == sorted(steps) and len(steps) > 10  # every evaluated step was kept, not a handful
    page = RESULTS.with_suffix(".md").read_text()
    assert mod.table(json.loads(RESULTS.read_text())["runs"]) in page  # the page's tables are the JSON rendered


def test_studies_against_the_teacher_add_their_own_column_and_agreement(mod):
    rows = [dict(r, **{"val_teacher/a": 30.0 + i, "val_teacher/b": 35.0 - i, "heldout_teacher/mean": 25.0 + i})
            for i, r in enumerate(ROWS)]
    vs_teacher = mod.agreement(rows, ["a", "b"], column="val_teacher", target="heldout_teacher/mean")
    assert (vs_teacher["val=a"], vs_teacher["val=b"]) == (1.0, -1.0)  # its own columns, not the real clip's
    s = mod.selections(rows, ["a"], ["x", "y"])
    assert s["val=a"]["mean_vs_teacher"] == 26.0  # step 50: the first at a's highest PSNR against the real clip
    study = {"run": "runs/r", "teacher_heldout": {"x": 1.0, "y": 1.0}, "selections": s,
             "agreement": mod.agreement(rows, ["a"]),
             "agreement_vs_teacher": mod.agreement(rows, ["a"], column="val_teacher", target="heldout_teacher/mean")}
    text = mod.table([study])
    assert "| mean | mean vs teacher |" in text and "| r | best validation PSNR on a | 50 | 12.00 | 12.00 | 12.00 | 26.00 |" \
        in text and "rank correlation against the teacher's decode (validation and held-out), val=a" in text
