"""The stage vocabulary every part of the lab shares (profiler, analysis, pruning, operator swap).

A decoder is a sequence of stages: ``conv_in``, ``mid``, ``up0`` ... ``upN``, ``head``, the rows of
Flash-VAED's profile table. Each stage names the submodules of the diffusers VAE that belong to it
(paths relative to the adapter's ``vae``), so a stage is found the same way in a teacher and in a
student built from it.
"""

from __future__ import annotations

from torch import nn

from lab.errors import LabError


def stage_paths(family_kind: str, num_up_blocks: int) -> dict[str, list[str]]:
    """Stage name -> module paths inside the VAE, for adapter kind 'wan' or 'ltx'."""
    ups = {f"up{i}": [f"decoder.up_blocks.{i}"] for i in range(num_up_blocks)}
    if family_kind == "wan":
        return {"conv_in": ["post_quant_conv", "decoder.conv_in"], "mid": ["decoder.mid_block"], **ups,
                "head": ["decoder.norm_out", "decoder.conv_out"]}
    if family_kind == "ltx":
        return {"conv_in": ["decoder.conv_in"], "mid": ["decoder.mid_block"], **ups,
                "head": ["decoder.norm_out", "decoder.conv_out"]}
    raise LabError(f"no stage map for decoders of kind '{family_kind}' (known: wan, ltx)")


def stage_kind(decoder) -> str | None:
    """'wan' or 'ltx' for the teachers and the students built from them (a student's adapter kind is
    'wan-student' / 'ltx-student': same stage map), None for decoders without the lab's stage map."""
    kind = getattr(decoder, "stage_kind", None) or str(getattr(decoder, "adapter_kind", "")).split("-")[0]
    has_ups = hasattr(getattr(getattr(decoder, "vae", None), "decoder", None), "up_blocks")
    return kind if kind in ("wan", "ltx") and has_ups else None


def _stage_map(decoder) -> dict[str, list[str]]:
    kind = stage_kind(decoder)
    if kind is None:
        raise LabError(f"{getattr(decoder, 'name', decoder)} (adapter kind '{getattr(decoder, 'adapter_kind', '?')}') "
                       f"has no stage map: stages are defined for the Wan and LTX-Video families and their students.")
    return stage_paths(kind, len(decoder.vae.decoder.up_blocks))


def decoder_stages(decoder) -> dict[str, list[nn.Module]]:
    """Stage name -> modules: by the shared map for the Wan and LTX-Video teachers and their students,
    by the decoder's own ``stage_map()`` for decoders of another layout (the lightweight family)."""
    if stage_kind(decoder) is None and callable(getattr(decoder, "stage_map", None)):
        return decoder.stage_map()
    paths = _stage_map(decoder)
    return {stage: [decoder.vae.get_submodule(p) for p in ps] for stage, ps in paths.items()}


def check_stage_names(decoder, names) -> None:
    known = list(_stage_map(decoder))
    bad = [n for n in names if n not in known]
    if bad:
        raise LabError(f"{decoder.name} has no stage(s) {', '.join(map(str, bad))}; its stages are "
                       f"{', '.join(known)}.")
