"""Swap plans: which operator each decoder stage uses. Named plans, validation, and the text form the
CLI takes (``mid=dwsep3d,up2=conv2d``)."""

from __future__ import annotations

from lab.errors import ConfigError
from lab.models.stages import stage_paths
from lab.ops.operators import OPERATORS, get_operator, list_operators

# Flash-VAED section 1.2. Stages not named keep their layers (conv_in, head; temporal upsampling convs,
# LTX's depth-to-space upsamplers and attention are never touched by any plan, see lab.ops.swap).
PLANS: dict[str, dict[str, dict[str, str]]] = {
    "flash-vaed": {
        "wan": {"mid": "dwsep3d", "up0": "dwsep3d", "up1": "dwsep3d", "up2": "conv2d", "up3": "conv2d"},
        "ltx": {"mid": "dwsep3d", "up0": "dwsep3d", "up1": "dwsep3d", "up2": "keep", "up3": "conv2d"},
    },
    "keep": {"wan": {}, "ltx": {}},
}


def parse_plan_text(text: str) -> dict[str, str] | str:
    """'flash-vaed' -> 'flash-vaed'; 'mid=dwsep3d,up2=conv2d' -> {'mid': 'dwsep3d', 'up2': 'conv2d'}."""
    if "=" not in text:
        return text.strip()
    plan = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        stage, sep, op = item.partition("=")
        if not sep or not stage.strip() or not op.strip():
            raise ConfigError(f"cannot read plan item '{item}': write STAGE=OPERATOR pairs separated by commas, "
                              f"e.g. mid=dwsep3d,up2=conv2d.")
        plan[stage.strip()] = op.strip()
    return plan


def resolve_plan(name_or_dict: str | dict[str, str], kind: str, num_up_blocks: int = 4) -> dict[str, str]:
    """A plan name, 'STAGE=OP,...' text or a dict -> {stage: operator} for every stage of a decoder of
    ``kind`` ('wan' or 'ltx'), unnamed stages filled with 'keep'. Raises ConfigError naming the bad
    stage or operator and what exists."""
    stages = list(stage_paths(kind, num_up_blocks))
    if isinstance(name_or_dict, str):
        parsed = parse_plan_text(name_or_dict)
        if isinstance(parsed, str):
            if parsed not in PLANS:
                raise ConfigError(f"unknown plan '{parsed}'; named plans: {', '.join(PLANS)}; or give "
                                  f"STAGE=OPERATOR pairs, e.g. mid=dwsep3d,up2=conv2d.")
            if kind not in PLANS[parsed]:
                raise ConfigError(f"plan '{parsed}' has no entry for {kind} decoders.")
            name_or_dict = PLANS[parsed][kind]
        else:
            name_or_dict = parsed
    if not isinstance(name_or_dict, dict):
        raise ConfigError(f"a plan is a name or a dict of stage -> operator, got {type(name_or_dict).__name__}.")
    bad = [s for s in name_or_dict if s not in stages]
    if bad:
        raise ConfigError(f"plan names stage(s) {', '.join(map(str, bad))} that a {kind} decoder with "
                          f"{num_up_blocks} up blocks does not have; its stages are {', '.join(stages)}.")
    for op in name_or_dict.values():
        get_operator(op)  # raises with the list of operators
    return {s: name_or_dict.get(s, "keep") for s in stages}


def available() -> dict:
    """What ``--list-operators`` style listings show: operators and named plans."""
    return {"operators": list_operators(), "plans": {n: p for n, p in PLANS.items()}}


__all__ = ["PLANS", "OPERATORS", "available", "parse_plan_text", "resolve_plan"]
