"""Swap plans: which operator each decoder stage uses. Validation and the text form the CLI takes
(``mid=dwsep3d,up2=conv2d``); the named plans (``flash-vaed``, ``keep``) belong to each family's
Architecture (lab.arch). Stages not named keep their layers; what a plan never touches (temporal
upsampling convs, depth-to-space upsamplers, attention) is the family's swap rules (lab.ops.swap)."""

from __future__ import annotations

from lab.errors import ConfigError
from lab.arch import Architecture, architectures, get_architecture
from lab.ops.operators import OPERATORS, get_operator, list_operators


def plan_names() -> list[str]:
    """Named plans of every registered family (each Architecture defines its own, see lab.arch)."""
    return sorted({n for a in architectures().values() for n in a.plans})


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


def resolve_plan(name_or_dict: str | dict[str, str], arch: Architecture | str,
                 num_up_blocks: int = 4) -> dict[str, str]:
    """A plan name, 'STAGE=OP,...' text or a dict -> {stage: operator} for every stage of a decoder of
    the family ``arch`` (an Architecture or its name), unnamed stages filled with 'keep'. Raises
    ConfigError naming the bad stage or operator and what exists."""
    arch = get_architecture(arch)
    stages = list(arch.stage_paths(num_up_blocks))
    if isinstance(name_or_dict, str):
        parsed = parse_plan_text(name_or_dict)
        name_or_dict = arch.plan(parsed) if isinstance(parsed, str) else parsed
    if not isinstance(name_or_dict, dict):
        raise ConfigError(f"a plan is a name or a dict of stage -> operator, got {type(name_or_dict).__name__}.")
    bad = [s for s in name_or_dict if s not in stages]
    if bad:
        raise ConfigError(f"plan names stage(s) {', '.join(map(str, bad))} that a {arch.title} decoder with "
                          f"{num_up_blocks} up blocks does not have; its stages are {', '.join(stages)}.")
    for op in name_or_dict.values():
        get_operator(op)  # raises with the list of operators
    return {s: name_or_dict.get(s, "keep") for s in stages}


def available() -> dict:
    """What ``--list-operators`` style listings show: operators and named plans."""
    return {"operators": list_operators(),
            "plans": {n: {a.name: a.plans[n] for a in architectures().values() if n in a.plans} for n in plan_names()}}


__all__ = ["OPERATORS", "available", "parse_plan_text", "plan_names", "resolve_plan"]
