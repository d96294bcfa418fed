"""Plateau detection, the phase-2 feature-weight decay and the per-phase LR schedule."""

import math

import pytest

from lab.distill.feature_weight import FeatureWeightDecay
from lab.training.schedule import PlateauDetector, lr_at


def test_plateau_fires_after_patience_without_improvement():
    det = PlateauDetector(patience=3, min_delta=0.01, smoothing=0.0)
    assert not any(det.update(v) for v in [1.0, 0.8, 0.6])  # improving
    assert [det.update(0.6) for _ in range(3)] == [False, False, True]


def test_plateau_ignores_improvements_below_min_delta_and_resets_on_real_ones():
    det = PlateauDetector(patience=2, min_delta=0.1, relative=True, smoothing=0.0)
    det.update(1.0)
    assert det.update(0.95) is False      # 5% < 10%: not an improvement
    assert det.update(0.5) is False       # a real one resets the count
    assert det.bad_updates == 0 and det.best == 0.5
    det.update(0.5)
    assert det.update(0.49) is True


def test_plateau_max_mode_absolute_delta_and_smoothing():
    det = PlateauDetector(patience=2, min_delta=0.5, mode="max", relative=False, smoothing=0.5)
    det.update(10.0)
    det.update(12.0)                      # smoothed 11.0: +1.0 > 0.5
    assert det.best == 11.0
    assert det.update(11.0) is False      # smoothed 11.0
    assert det.update(11.4) is True       # smoothed 11.2: +0.2 < 0.5, second bad update
    assert not det.update(float("nan"))   # non-finite values are ignored


def test_plateau_state_round_trips():
    a = PlateauDetector(patience=4, smoothing=0.9)
    for v in [3.0, 2.0, 2.5]:
        a.update(v)
    b = PlateauDetector(patience=4, smoothing=0.9)
    b.load_state_dict(a.state_dict())
    assert [a.update(v) for v in [2.4, 2.4, 2.4]] == [b.update(v) for v in [2.4, 2.4, 2.4]]
    assert a.state_dict() == b.state_dict()


def test_feature_weight_decays_with_pixel_loss_and_is_clamped():
    d = FeatureWeightDecay(w0=2.0, smoothing=0.0)
    assert d.weight == 2.0                # before any pixel loss: the configured weight
    assert d.update(0.4) == 2.0           # phase start
    assert d.update(0.2) == pytest.approx(1.0)
    assert d.update(0.1) == pytest.approx(0.5)
    assert d.update(0.8) == 2.0           # never above w0
    e = FeatureWeightDecay(w0=1.0)
    e.load_state_dict(d.state_dict())
    assert e.weight == d.weight


def test_lr_warmup_then_cosine_to_floor():
    lrs = [lr_at(i, 20, 1e-3, 5, 0.1) for i in range(21)]
    assert lrs[0] == pytest.approx(2e-4) and lrs[4] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[20] == pytest.approx(1e-4)
    assert math.isclose(lr_at(100, 20, 1e-3, 5, 0.1), 1e-4)
