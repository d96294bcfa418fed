"""``Architecture``: everything the lab knows about one VAE family, in one object.

The rest of the lab is family-agnostic: analysis, pruning, operator swaps, feature distillation and the
profiler ask a decoder's architecture (``decoder.arch``) for what differs between families, never test
a family name. One family is one module in lab/arch defining one ``Architecture`` subclass instance,
plus a line in lab/arch/__init__.py that registers it (see there for what else a prunable family needs).

What an Architecture owns:
- the **stage map**: ``conv_in``, ``mid``, ``up0`` ... ``upN``, ``head`` (the rows of Flash-VAED's
  profile table) as module paths inside the diffusers VAE, shared by teachers and their students;
- the **channel groups** (lab.arch.groups) that pruning keeps consistent, and why a stage cannot be
  pruned when it cannot;
- **decoding** raw latents through the VAE itself (one place for LTX's timestep conditioning);
- the **Flash-VAED widths** and **named operator plans**;
- the **swap rules**: which conv classes a plan may replace, which subtrees are never touched, and
  whether the family's causal convs carry a frame cache that a drop-in operator must honour;
"""

from __future__ import annotations

import torch
from torch import nn

from lab.arch.groups import ChannelGroup, conv_input_groups
from lab.errors import ConfigError


class Architecture:
    #: registry key, what decoders carry as ``decoder.arch.name``; also the plans' and keep ratios' key
    name: str = ""
    #: what users read
    title: str = ""
    #: Flash-VAED's keep ratio for the last two up blocks (the high-resolution stages)
    flash_vaed_ratio: float = 1.0
    #: named operator plans: plan name -> {stage: operator}; stages not named keep their layers
    plans: dict[str, dict[str, str]] = {}
    #: conv classes that a plan may replace (with a kernel larger than 1x1x1)
    causal_convs: tuple[type, ...] = ()
    #: subtrees whose convs are never swapped (temporal/depth-to-space upsamplers, attention)
    kept_subtrees: tuple[type, ...] = ()
    #: the diffusers VAE API its models expose to pipelines ('wan': Wan's VAE class's, 'ltx':
    #: LTX-Video's VAE class's), which the student's diffusers facade (lab.models.diffusers_compat) copies
    pipeline_api: str = ""
    #: a registered test-size teacher of this family (the real class at a tiny config, random weights): what the
    #: family conformance test (tests/families) runs every check on
    tiny_teacher: str = ""
    #: True when the causal convs decode chunk by chunk with a cache of past frames (``forward(x,
    #: cache_x)``), a contract every drop-in operator must keep
    frame_cache: bool = False

    # ----- structure --------------------------------------------------------------------------------
    def num_up_blocks(self, vae: nn.Module) -> int:
        return len(vae.decoder.up_blocks)

    def stage_paths(self, num_up_blocks: int) -> dict[str, list[str]]:
        """Stage name -> module paths inside the VAE."""
        raise NotImplementedError

    def stages_of(self, vae: nn.Module) -> dict[str, list[str]]:
        return self.stage_paths(self.num_up_blocks(vae))

    def owns(self, vae: nn.Module) -> bool:
        """True when ``vae`` (a diffusers-style VAE: a teacher's, or a student's model) is of this family."""
        raise NotImplementedError

    def latent_stats(self, vae: nn.Module) -> tuple[list[float], list[float], float]:
        """(latents_mean, latents_std, scaling_factor) where this family keeps them."""
        raise NotImplementedError

    def set_latent_stats(self, vae: nn.Module, mean: list[float], std: list[float]) -> None:
        """Store measured latent statistics where this family keeps them (a teacher export)."""
        raise NotImplementedError

    def encoder_parts(self, vae: nn.Module) -> list[nn.Module]:
        """The modules whose parameters are 'the encoder'."""
        return [vae.encoder]

    def decoder_parts(self, vae: nn.Module) -> list[nn.Module]:
        """The modules whose parameters are 'the decoder' (what parameter counts and MACs cover)."""
        return [vae.decoder]

    def decoder_params(self, vae: nn.Module) -> int:
        return sum(p.numel() for m in self.decoder_parts(vae) for p in m.parameters())

    def is_causal(self, vae: nn.Module) -> bool:
        raise NotImplementedError

    # ----- channel groups ---------------------------------------------------------------------------
    def prune_groups(self, vae: nn.Module) -> list[ChannelGroup]:
        """The explicit channel map of an unswapped teacher or pruned student."""
        raise NotImplementedError

    def channel_groups(self, vae: nn.Module) -> list[ChannelGroup]:
        """The groups analysis records: the channel map, or, once operators were swapped in (the map's
        layers are gone), the input of every conv per stage."""
        if self.is_swapped(vae):
            return conv_input_groups(vae, self.stages_of(vae))
        return self.prune_groups(vae)

    def is_swapped(self, vae: nn.Module) -> bool:
        """True once any resnet's conv1 is no longer one of the family's convs (an operator replaced it)."""
        return any(hasattr(m, "conv1") and hasattr(m, "conv2") and not isinstance(m.conv1, self.causal_convs)
                   for m in vae.decoder.modules())

    def unprunable_reason(self, stage: str) -> str:
        """Why ``stage`` has no prunable group (for the error that refuses a keep ratio there)."""
        if stage == "conv_in":
            return "it writes the mid stage's stream (prune that with mid=RATIO)"
        return "it has no channels of its own (it reads the last stage's stream)"

    def stage_output_group(self, stage: str, group_names: list[str], num_up_blocks: int) -> str | None:
        """The channel group a stage's output lives in (so a student's kept channels of that output can
        be compared with the teacher's), or None."""
        raise NotImplementedError

    # ----- method ---------------------------------------------------------------------------------
    def flash_vaed_keep(self, num_up_blocks: int) -> dict[str, float]:
        """The Flash-VAED widths: the family's ratio in the last two up blocks (up2/up3 of Wan 2.1 and
        LTX-Video 0.9; up1/up2 of a decoder with three up blocks)."""
        return {f"up{i}": self.flash_vaed_ratio for i in range(max(0, num_up_blocks - 2), num_up_blocks)}

    def plan(self, name: str) -> dict[str, str]:
        if name not in self.plans:
            raise ConfigError(f"unknown plan '{name}' for {self.title} decoders; named plans: "
                              f"{', '.join(self.plans)}; or give STAGE=OPERATOR pairs, e.g. mid=dwsep3d,up2=conv2d.")
        return dict(self.plans[name])

    # ----- running ----------------------------------------------------------------------------------
    def decode_raw(self, vae: nn.Module, z: torch.Tensor, decode_timestep: float = 0.0) -> torch.Tensor:
        """Raw (denormalised) latents -> video through the VAE itself (teacher or student)."""
        return vae.decode(z).sample

    def reset(self, vae: nn.Module) -> None:
        """Drop any state a decode leaves behind (a frame cache) after the model changed."""

    def __repr__(self) -> str:
        return f"Architecture({self.name!r})"
