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


def decoder_stages(decoder) -> dict[str, list[nn.Module]]:
    """Stage name -> modules, for any adapter with a ``vae`` whose decoder has ``up_blocks``."""
    vae = decoder.vae
    paths = stage_paths(decoder.adapter_kind, len(vae.decoder.up_blocks))
    return {stage: [vae.get_submodule(p) for p in ps] for stage, ps in paths.items()}


def check_stage_names(decoder, names) -> None:
    known = list(stage_paths(decoder.adapter_kind, len(decoder.vae.decoder.up_blocks)))
    bad = [n for n in names if n not in known]
    if bad:
        raise LabError(f"{decoder.name} has no stage(s) {', '.join(map(str, bad))}; its stages are "
                       f"{', '.join(known)}.")
