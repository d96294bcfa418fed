"""Plans and their validation; the clear errors of apply_operators (unknown stage/operator,
non-causal ops in causal decoders, broken cache contract, swapping twice)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lab.errors import ConfigError, LabError
from lab.ops import operators as ops_mod
from lab.ops.operators import SwapOp, register_operator
from lab.ops.plan import available, parse_plan_text, resolve_plan
from lab.ops.swap import apply_operators


def test_flash_vaed_plans():
    wan = resolve_plan("flash-vaed", "wan")
    assert wan == {"conv_in": "keep", "mid": "dwsep3d", "up0": "dwsep3d", "up1": "dwsep3d", "up2": "conv2d",
                   "up3": "conv2d", "head": "keep"}
    ltx = resolve_plan("flash-vaed", "ltx")
    assert (ltx["mid"], ltx["up1"], ltx["up2"], ltx["up3"]) == ("dwsep3d", "dwsep3d", "keep", "conv2d")
    assert set(resolve_plan("keep", "wan").values()) == {"keep"}


def test_plan_text_and_dict_forms():
    assert parse_plan_text("mid=dwsep3d, up2=conv2d") == {"mid": "dwsep3d", "up2": "conv2d"}
    assert resolve_plan("up3=conv2plus1d", "wan")["up3"] == "conv2plus1d"
    assert resolve_plan({"head": "conv2d"}, "ltx")["head"] == "conv2d"
    names = {o["name"] for o in available()["operators"]}
    assert {"keep", "dwsep3d", "conv2plus1d", "conv2d"} <= names


@pytest.mark.parametrize("plan, words", [
    ({"mid": "depthwise"}, ["unknown operator 'depthwise'", "dwsep3d", "register_operator"]),
    ({"up7": "conv2d"}, ["up7", "conv_in, mid, up0, up1, up2, up3, head"]),
    ("fastest", ["unknown plan 'fastest'", "flash-vaed"]),
    ("mid=,up2=conv2d", ["STAGE=OPERATOR"]),
])
def test_plan_errors_name_the_problem_and_the_fix(plan, words):
    with pytest.raises(ConfigError) as e:
        resolve_plan(plan, "wan")
    for w in words:
        assert w in str(e.value)


class _LookAhead(SwapOp):
    """A symmetric (non-causal) temporal average: legal in LTX's non-causal decoder only."""
    op_name = "lookahead"

    def __init__(self, spec):
        super().__init__(spec)
        self.conv = nn.Conv3d(spec.in_channels, spec.out_channels, 1)

    def forward(self, x, cache_x=None):
        y = self.conv(x)
        return (y + torch.cat([y[:, :, 1:], y[:, :, -1:]], 2)) / 2

    def init_from(self, spec, **options):
        return {}


class _IgnoresCache(_LookAhead):
    """Causal, but zero-pads time even when Wan hands it the previous frames."""
    op_name = "nocache"

    def __init__(self, spec):
        super().__init__(spec)
        self.conv = nn.Conv3d(spec.in_channels, spec.out_channels, (2, 1, 1))

    def forward(self, x, cache_x=None):
        return self.conv(F.pad(x, (0, 0, 0, 0, 1, 0)))


@pytest.fixture
def user_ops():
    saved = dict(ops_mod.OPERATORS)
    register_operator("lookahead-declared", _LookAhead, "declared non-causal", causal=False)
    register_operator("lookahead-undeclared", _LookAhead, "non-causal but claims to be causal")
    register_operator("nocache", _IgnoresCache, "ignores cache_x")
    yield
    ops_mod.OPERATORS.clear()
    ops_mod.OPERATORS.update(saved)


def test_non_causal_ops_are_refused_in_causal_decoders(tiny_wan, tiny_ltx, user_ops):
    vae = copy.deepcopy(tiny_wan.vae)
    with pytest.raises(LabError, match="looks at future frames"):
        apply_operators(vae, "wan", {"up3": "lookahead-declared"})
    with pytest.raises(LabError, match="is not causal"):  # caught by the probe, not by the declaration
        apply_operators(vae, "wan", {"up3": "lookahead-undeclared"})
    with pytest.raises(LabError, match="cache contract"):
        apply_operators(vae, "wan", {"mid": "nocache"})
    # Nothing was installed by the refused calls.
    assert not any(isinstance(m, SwapOp) for m in vae.modules())
    # LTX's decoder is not causal: the look-ahead op is fine there.
    ltx = copy.deepcopy(tiny_ltx.vae)
    summary = apply_operators(ltx, "ltx", {"up3": "lookahead-declared"})
    assert summary["stages"]["up3"]["layers"] > 0


def test_swapping_twice_is_refused(tiny_wan):
    vae = copy.deepcopy(tiny_wan.vae)
    apply_operators(vae, "wan", "flash-vaed")
    with pytest.raises(LabError, match="already replaced"):
        apply_operators(vae, "wan", {"up2": "dwsep3d"})


def test_unknown_stage_is_refused_by_apply(tiny_wan):
    with pytest.raises(ConfigError, match="does not have"):
        apply_operators(copy.deepcopy(tiny_wan.vae), "wan", {"up4": "conv2d"})
