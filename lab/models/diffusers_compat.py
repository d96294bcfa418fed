"""A diffusers-compatible VAE facade around any lab decoder, so a student can replace ``pipe.vae`` in
diffusers' Wan and LTX-Video pipelines: text-, image- and video-to-video.

``decode`` runs the lab decoder (a student, say); ``encode`` runs the *teacher's* encoder, because a
student has none and the pipeline's transformer was trained on the teacher's latents anyway. The
teacher is the VAE passed as ``teacher=`` (e.g. the pipeline's own ``pipe.vae``), or, when none is
passed, loaded on the first ``encode`` from the teacher the student records (``lab.models.load_decoder
(student.teacher_name)``), keeping only its encoder.

What the pipelines read from ``pipe.vae`` (``grep self.vae`` in diffusers/pipelines/wan and .../ltx),
and what the facade provides (``VAE_ATTRIBUTES`` lists them; a test checks every one):
- Wan (``WanPipeline``, ``WanImageToVideoPipeline``, ``WanVideoToVideoPipeline``, VACE, Animate):
  ``config.latents_mean``/``latents_std``/``z_dim``, ``config.scale_factor_temporal``/
  ``scale_factor_spatial``, ``temperal_downsample`` (video-to-video and VACE derive the scale factors
  from it), ``dtype``, the execution device, ``encode(x).latent_dist`` (raw latents: the pipelines
  normalise them with the config) and ``decode(z, return_dict=False)[0]``.
- LTX-Video (``LTXPipeline``, ``LTXImageToVideoPipeline``, ``LTXConditionPipeline``): ``latents_mean``/
  ``latents_std`` tensors, ``config.scaling_factor``, ``config.timestep_conditioning``,
  ``spatial_compression_ratio``/``temporal_compression_ratio``, ``encode`` and ``decode(z, temb,
  return_dict=False)[0]``; the long multi-prompt pipeline also calls ``enable_tiling()``.
``decode`` returns ``DecoderOutput(sample=video)`` in [-1, 1], like the diffusers VAEs.

Tiling and slicing are diffusers' own (same method names, flags and defaults as each family's VAE
class): overlapping spatial tiles blended linearly, and batch slicing. Wan
tiles are spatial only, each decoded causally over the whole clip (the decoder's own time loop);
LTX-Video also decodes overlapping frame windows when ``use_framewise_decoding`` is set. The tiles
are blended row by row (the previous row is all a row needs), so fewer decoded tiles are held at once
than in diffusers; the result is the same. ``encode`` applies the same flags to the teacher's encoder.

On disk the facade is the lab's decoder folder (``VideoDecoder.save``): ``save_pretrained`` writes one,
``from_pretrained``/``load_diffusers_vae`` read any (e.g. ``runs/flash/best``).
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import AutoencoderMixin, DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook

from lab.arch import arch_of_vae
from lab.errors import ConfigError, LabError
from lab.models.interface import VideoDecoder
from lab.models import load_decoder
from lab.plugins import load_families

# Every attribute diffusers' Wan and LTX-Video pipelines read from ``pipe.vae`` (diffusers 0.42):
# names on the VAE, and names in its config.
VAE_ATTRIBUTES = {
    "wan": {"vae": ("dtype", "device", "encode", "decode", "temperal_downsample", "enable_tiling",
                    "disable_tiling", "enable_slicing", "disable_slicing", "use_tiling", "use_slicing", "to"),
            "config": ("latents_mean", "latents_std", "z_dim", "scale_factor_temporal", "scale_factor_spatial")},
    "ltx": {"vae": ("dtype", "device", "encode", "decode", "latents_mean", "latents_std", "spatial_compression_ratio",
                    "temporal_compression_ratio", "enable_tiling", "disable_tiling", "enable_slicing",
                    "disable_slicing", "use_tiling", "use_slicing", "use_framewise_decoding", "to"),
            "config": ("scaling_factor", "timestep_conditioning")},
}

# from_pretrained arguments that only matter for hub downloads, diffusers' own weight loader or other
# backends; a lab folder ignores them (DiffusionPipeline.from_pretrained passes several to every component).
_IGNORED_LOAD_KWARGS = {"cache_dir", "force_download", "proxies", "local_files_only", "token", "revision",
                        "low_cpu_mem_usage", "use_safetensors", "output_loading_info", "mirror", "disable_mmap",
                        "use_flashpack", "max_memory", "offload_folder", "offload_state_dict", "provider",
                        "sess_options", "provider_options", "from_flax", "dduf_entries"}


# ----- diffusers' blend helpers (its Wan and LTX-Video VAEs' .blend_v/_h/_t), as functions --------
# Same loops and weights, so a tiled decode blends exactly as diffusers does. ``b`` is modified in place.
def blend_v(a: torch.Tensor, b: torch.Tensor, blend_extent: int) -> torch.Tensor:
    blend_extent = min(a.shape[-2], b.shape[-2], blend_extent)
    for y in range(blend_extent):
        b[:, :, :, y, :] = a[:, :, :, -blend_extent + y, :] * (1 - y / blend_extent) + b[:, :, :, y, :] * (
            y / blend_extent)
    return b


def blend_h(a: torch.Tensor, b: torch.Tensor, blend_extent: int) -> torch.Tensor:
    blend_extent = min(a.shape[-1], b.shape[-1], blend_extent)
    for x in range(blend_extent):
        b[:, :, :, :, x] = a[:, :, :, :, -blend_extent + x] * (1 - x / blend_extent) + b[:, :, :, :, x] * (
            x / blend_extent)
    return b


def blend_t(a: torch.Tensor, b: torch.Tensor, blend_extent: int) -> torch.Tensor:
    blend_extent = min(a.shape[-3], b.shape[-3], blend_extent)
    for x in range(blend_extent):
        b[:, :, x, :, :] = a[:, :, -blend_extent + x, :, :] * (1 - x / blend_extent) + b[:, :, x, :, :] * (
            x / blend_extent)
    return b


def _family(decoder: VideoDecoder) -> str:
    """Which diffusers VAE API the facade exposes: the decoder's family says (``Architecture.pipeline_api``);
    lightweight decoders, which have none, by the latent space they decode."""
    if decoder.arch is not None:
        return decoder.arch.pipeline_api
    for name, cls in facades().items():
        if decoder.geometry.channels in cls.latent_channels:
            return name
    raise LabError(f"{decoder.name} decodes {decoder.geometry.channels}-channel latents, which no diffusers pipeline "
                   f"API of the lab takes ({', '.join(facades())})")


def _teacher_classes(family: str) -> tuple[type, ...]:
    """The diffusers VAE classes whose encoder can serve a family's decoders."""
    return tuple(facades()[family].teacher_classes())


def _temperal_downsample(decoder: VideoDecoder) -> list[bool]:
    """The Wan teacher's ``temperal_downsample`` (Wan's video-to-video and VACE pipelines derive the scale
    factors from it), from the decoder's config, else from its geometry."""
    cfg = getattr(getattr(decoder, "vae", None), "config", None)
    tc = getattr(cfg, "teacher_config", None)
    td = tc.get("temperal_downsample") if isinstance(tc, dict) else getattr(cfg, "temperal_downsample", None)
    if td:
        return [bool(x) for x in td]
    g = decoder.geometry
    n_s, n_t = round(math.log2(g.spatial)), round(math.log2(g.t))
    return [False] * max(0, n_s - n_t) + [True] * n_t


def _normalisation(vae) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(latents_mean, latents_std, scaling_factor) of a diffusers teacher VAE, as its pipelines use them: where
    its family keeps them (Architecture.latent_stats)."""
    mean, std, scale = arch_of_vae(vae).latent_stats(vae)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32), float(scale)


class DiffusersVAE(ModelMixin, AutoencoderMixin, ConfigMixin):
    """Wraps a lab :class:`~lab.models.interface.VideoDecoder` behind diffusers' VAE API.

    Build it with :meth:`from_decoder`, :func:`as_diffusers_vae` or :func:`load_diffusers_vae`; it is a
    subclass per pipeline API, registered by its family (Wan's ``WanDiffusersVAE``, LTX-Video's
    ``LTXDiffusersVAE``), each with its diffusers class's tiling API."""

    #: the pipeline API (Architecture.pipeline_api): which teacher class, tiling API and defaults
    family: str = ""
    #: latent channel counts of family-less (lightweight) decoders that take this API
    latent_channels: tuple[int, ...] = ()

    @classmethod
    def teacher_classes(cls) -> tuple[type, ...]:
        raise NotImplementedError

    @register_to_config
    def __init__(self, z_dim: int = 16, latents_mean: list | None = None, latents_std: list | None = None,
                 scale_factor_temporal: int = 4, scale_factor_spatial: int = 8, scaling_factor: float = 1.0,
                 timestep_conditioning: bool = False, decoder_name: str = "", teacher: str = "",
                 temperal_downsample: list | None = None):
        super().__init__()
        self.decoder = None
        self.teacher_vae = None
        self.spatial_compression_ratio = scale_factor_spatial
        self.temporal_compression_ratio = scale_factor_temporal
        self.temperal_downsample = list(temperal_downsample or [])
        self.use_slicing = False
        self.use_tiling = False
        self._init_tiling()

    def _init_tiling(self) -> None:
        raise NotImplementedError

    # LTX pipelines read latents_mean/std as tensors on the VAE, Wan pipelines as lists in its config;
    # properties serve the first from the second (a class attribute wins over ConfigMixin's lookup).
    @property
    def latents_mean(self) -> torch.Tensor:
        z = self.config.z_dim
        return torch.zeros(z) if self.config.latents_mean is None else torch.tensor(self.config.latents_mean)

    @property
    def latents_std(self) -> torch.Tensor:
        z = self.config.z_dim
        return torch.ones(z) if self.config.latents_std is None else torch.tensor(self.config.latents_std)

    # ----- building ------------------------------------------------------------------------------
    @classmethod
    def from_decoder(cls, decoder: VideoDecoder, teacher=None) -> "DiffusersVAE":
        """The facade of ``decoder``; ``teacher`` (optional) is the VAE whose encoder ``encode`` runs: a diffusers
        VAE of the decoder's family (e.g. the pipeline's own ``pipe.vae``), a lab teacher, or a
        registered name or folder. Without it, the teacher the decoder records is loaded on the first ``encode``."""
        if not isinstance(decoder, VideoDecoder):
            raise LabError(f"as_diffusers_vae takes a lab decoder (lab.models.load_decoder(...)), got "
                           f"{type(decoder).__name__}")
        family = _family(decoder)
        klass = _CLASSES[family] if cls is DiffusersVAE else cls
        if klass.family != family:
            raise LabError(f"{decoder.name} decodes {family} latents; load it with {_CLASSES[family].__name__} "
                           f"(or DiffusersVAE / load_diffusers_vae, which pick the class), not {cls.__name__}.")
        g = decoder.geometry
        vae = klass(z_dim=g.channels, latents_mean=decoder.latents_mean.flatten().tolist(),
                    latents_std=decoder.latents_std.flatten().tolist(), scale_factor_temporal=g.t,
                    scale_factor_spatial=g.spatial, scaling_factor=decoder.scaling_factor, decoder_name=decoder.name,
                    teacher=decoder.teacher_name or "", temperal_downsample=_temperal_downsample(decoder))
        vae.decoder = decoder  # already on its device and dtype; registered first, so it sets the facade's dtype
        if teacher is not None:
            vae.set_teacher(teacher)
        return vae

    def set_teacher(self, teacher) -> "DiffusersVAE":
        """Use ``teacher``'s encoder for ``encode`` (see :meth:`from_decoder`). A VAE passed in is shared, not
        copied (moving the facade moves it too); one loaded by name keeps its encoder only."""
        if isinstance(teacher, (str, os.PathLike)):
            teacher = self._load_teacher(str(teacher))
        if isinstance(teacher, VideoDecoder):
            if not teacher.has_encoder:
                raise LabError(f"{teacher.name} has no encoder; the teacher must be a full VAE (e.g. the pipeline's "
                               f"own pipe.vae, or lab.models.load_decoder('{teacher.teacher_name or 'wan2.1'}')).")
            teacher = teacher.vae
        expected = _teacher_classes(self.family)
        names = " or ".join(c.__name__ for c in expected)
        if not isinstance(teacher, expected):
            raise LabError(f"the teacher of {self.config.decoder_name} must be a diffusers {names} (e.g. the "
                           f"pipeline's own pipe.vae), got {type(teacher).__name__}.")
        if getattr(teacher, "encoder", None) is None:
            raise LabError(f"the teacher VAE passed for {self.config.decoder_name} has no encoder; pass a full "
                           f"{names}.")
        mean, _, _ = _normalisation(teacher)
        if mean.numel() != self.config.z_dim:
            raise LabError(f"the teacher VAE makes {mean.numel()}-channel latents but {self.config.decoder_name} "
                           f"decodes {self.config.z_dim}; pass the teacher it was built from.")
        p = next(teacher.parameters())
        if self.decoder is not None and (p.device, p.dtype) != (self.decoder.device, self.decoder.dtype):
            raise LabError(f"the teacher VAE is {p.dtype} on {p.device} but {self.config.decoder_name} is "
                           f"{self.decoder.dtype} on {self.decoder.device}; move one of them first "
                           f"(teacher.to(...) or student.to(...)).")
        self.teacher_vae = teacher
        return self

    def _load_teacher(self, source: str):
        try:
            dec = load_decoder(source)
        except LabError as exc:
            raise LabError(f"{self.config.decoder_name} encodes with its teacher's encoder and could not load the "
                           f"teacher '{source}': {exc} Or pass the teacher's VAE: as_diffusers_vae(student, "
                           f"teacher=pipe.vae).") from exc
        if not dec.has_encoder:
            raise LabError(f"'{source}' (recorded as the teacher of {self.config.decoder_name}) has no encoder; pass "
                           f"the teacher's VAE: as_diffusers_vae(student, teacher=pipe.vae).")
        vae = dec.vae
        # Encode-only: the student decodes, so the teacher's decoder would only take memory.
        vae.decoder = None
        if hasattr(vae, "post_quant_conv"):
            vae.post_quant_conv = None
        if self.decoder is not None:
            vae.to(device=self.decoder.device, dtype=self.decoder.dtype)
        return vae

    def _encoder_vae(self):
        if self.teacher_vae is not None:
            return self.teacher_vae
        if self.decoder.has_encoder:  # the facade of a teacher: its own VAE encodes
            return self.decoder.vae
        if not self.config.teacher:
            raise LabError(f"{self.config.decoder_name} has no encoder and records no teacher, so it cannot encode; "
                           f"pass the teacher's VAE: as_diffusers_vae(decoder, teacher=pipe.vae).")
        self.set_teacher(self._load_teacher(self.config.teacher))
        return self.teacher_vae

    # ----- tiling and slicing --------------------------------------------------------------------
    def _check_tiles(self) -> None:
        s = self.spatial_compression_ratio
        for what in ("height", "width"):
            size, stride = getattr(self, f"tile_sample_min_{what}"), getattr(self, f"tile_sample_stride_{what}")
            if size % s or stride % s or not 0 < stride <= size:
                raise ConfigError(f"tile_sample_min_{what}={size} and tile_sample_stride_{what}={stride} must be "
                                  f"positive multiples of the VAE's spatial compression ({s}) with stride <= size "
                                  f"(e.g. {self._default_tiles[0]} and {self._default_tiles[1]}).")

    def _tiling_attributes(self) -> tuple[str, ...]:
        return ("use_tiling", "use_slicing", "tile_sample_min_height", "tile_sample_min_width",
                "tile_sample_stride_height", "tile_sample_stride_width")

    @contextmanager
    def _teacher_follows(self, vae):
        """The facade's tiling/slicing settings on the teacher for one call; its own are restored after."""
        names = [n for n in self._tiling_attributes() if hasattr(vae, n)]
        before = {n: getattr(vae, n) for n in names}
        try:
            for n in names:
                setattr(vae, n, getattr(self, n))
            yield vae
        finally:
            for n, v in before.items():
                setattr(vae, n, v)

    # ----- encode --------------------------------------------------------------------------------
    @apply_forward_hook
    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """Video (or image, as a 1-frame video) in [-1, 1] -> the teacher's posterior over raw latents, exactly
        as the teacher VAE's ``encode`` returns it; the pipelines normalise with the facade's config, which
        matches the teacher's for students."""
        vae = self._encoder_vae()
        with self._teacher_follows(vae):
            posterior = vae.encode(x).latent_dist
        posterior = self._in_own_latent_space(posterior, vae)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def _in_own_latent_space(self, posterior: DiagonalGaussianDistribution, vae) -> DiagonalGaussianDistribution:
        """The posterior in the raw latent space the facade's config describes. Students share their teacher's
        normalisation (the posterior passes unchanged); decoders with another one (lightweight decoders take
        normalized latents: mean 0, std 1) get it mapped so that the pipeline's normalisation gives the
        teacher's normalized latents: raw' = a * raw + b per channel."""
        m_t, s_t, k_t = _normalisation(vae)
        m_f, s_f, k_f = self.latents_mean.float(), self.latents_std.float(), float(self.config.scaling_factor)
        if torch.equal(m_t, m_f) and torch.equal(s_t, s_f) and k_t == k_f:
            return posterior
        a = (k_t * s_f) / (s_t * k_f)
        b = m_f - m_t * a
        view = (1, -1) + (1,) * (posterior.mean.ndim - 2)
        a, b = (v.view(view).to(posterior.mean.device, posterior.mean.dtype) for v in (a, b))
        params = torch.cat([posterior.mean * a + b, posterior.logvar + 2 * a.abs().log()], dim=1)
        return DiagonalGaussianDistribution(params, deterministic=posterior.deterministic)

    # ----- decode --------------------------------------------------------------------------------
    @apply_forward_hook
    @torch.no_grad()
    def decode(self, z: torch.Tensor, temb: torch.Tensor | None = None, return_dict: bool = True):
        """Raw (denormalised) latents, as the pipelines pass them -> video in [-1, 1]. ``temb`` (LTX
        timestep conditioning) is accepted for the signature and must be None: lab decoders are not
        timestep-conditioned."""
        if temb is not None:
            raise LabError(f"{self.decoder.name} is not timestep-conditioned; load the pipeline's VAE with "
                           f"timestep_conditioning=False (the facade's config says so) or decode without temb.")
        self.decoder.check_latents(z)
        if self.use_slicing and z.shape[0] > 1:
            video = torch.cat([self._decode(z_slice) for z_slice in z.split(1)])
        else:
            video = self._decode(z)
        video = video.clamp(-1.0, 1.0)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def _wants_tiles(self, z: torch.Tensor) -> bool:
        s = self.spatial_compression_ratio
        return self.use_tiling and (z.shape[-1] > self.tile_sample_min_width // s or
                                    z.shape[-2] > self.tile_sample_min_height // s)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """One batch slice, unclamped."""
        return self._tiled_decode(z) if self._wants_tiles(z) else self.decoder._decode_raw(z)

    @torch.no_grad()
    def tiled_decode(self, z: torch.Tensor, temb: torch.Tensor | None = None, return_dict: bool = True):
        """Decode in overlapping spatial tiles (whatever ``use_tiling`` says), as diffusers' ``tiled_decode``."""
        if temb is not None:
            raise LabError(f"{self.decoder.name} is not timestep-conditioned; decode without temb.")
        self.decoder.check_latents(z)
        video = self._tiled_decode(z).clamp(-1.0, 1.0)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def _tiled_decode(self, z: torch.Tensor) -> torch.Tensor:
        """diffusers' tiled decode (its Wan and LTX-Video VAEs' tiled_decode): latent tiles of
        ``tile_sample_min`` / s at stride ``tile_sample_stride`` / s, each decoded whole in time (causally, for
        Wan: its own time loop), blended over ``min - stride`` pixels with the tile above and to the left, and
        cropped to the stride. Blended a row at a time: a tile needs only the row above."""
        self._check_tiles()
        _, _, _, height, width = z.shape
        s = self.spatial_compression_ratio
        min_h, min_w = self.tile_sample_min_height // s, self.tile_sample_min_width // s
        stride_h, stride_w = self.tile_sample_stride_height // s, self.tile_sample_stride_width // s
        blend_height = self.tile_sample_min_height - self.tile_sample_stride_height
        blend_width = self.tile_sample_min_width - self.tile_sample_stride_width
        above, out_rows = None, []
        for i in range(0, height, stride_h):
            row = []
            for j in range(0, width, stride_w):
                tile = self.decoder._decode_raw(z[:, :, :, i:i + min_h, j:j + min_w])
                if above is not None:
                    tile = blend_v(above[len(row)], tile, blend_height)
                if row:
                    tile = blend_h(row[-1], tile, blend_width)
                row.append(tile)
            out_rows.append(torch.cat([t[:, :, :, :self.tile_sample_stride_height, :self.tile_sample_stride_width]
                                       for t in row], dim=-1))
            above = row
        return torch.cat(out_rows, dim=3)[:, :, :, :height * s, :width * s]

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator: torch.Generator | None = None):
        """Reconstruct ``sample`` (video in [-1, 1]) as the diffusers VAEs do: the teacher's encoder, then the
        decoder."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)

    # ----- folders -------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, is_main_process: bool = True,
                        safe_serialization: bool = True, variant: str | None = None, push_to_hub: bool = False,
                        overwrite: bool = False, **kwargs) -> None:
        """Save the decoder as a lab decoder folder (``VideoDecoder.save``: diffusers config and safetensors plus
        ``lab_decoder.json``), which :meth:`from_pretrained` and ``lab.models.load_decoder`` read. The teacher's
        encoder is not saved: a reloaded facade loads the teacher the decoder records, or takes ``teacher=``."""
        if push_to_hub or variant or not safe_serialization:
            raise LabError("the facade saves a lab decoder folder (safetensors, no variant) locally; push the folder "
                           "with huggingface_hub.upload_folder after save_pretrained.")
        if is_main_process:
            self.decoder.save(save_directory, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, subfolder: str | None = None,
                        torch_dtype: torch.dtype | None = None, teacher=None, **kwargs) -> "DiffusersVAE":
        """Load a lab decoder folder (what :meth:`save_pretrained`, ``VideoDecoder.save`` and ``python -m lab
        distill`` write, e.g. ``runs/flash/best``) or a registered name as a facade."""
        torch_dtype = torch_dtype or kwargs.pop("dtype", None)
        device_map = kwargs.pop("device_map", None)
        if device_map is not None and not isinstance(device_map, (str, torch.device)):
            raise ConfigError(f"{cls.__name__} loads onto one device: pass device_map='cuda' (or 'cpu'), not "
                              f"{type(device_map).__name__}; offload the pipeline with enable_model_cpu_offload().")
        # Set options the facade cannot honour (variant, quantization_config, ...) are refused, not ignored.
        unknown = sorted(k for k, v in kwargs.items() if k not in _IGNORED_LOAD_KWARGS and v is not None)
        if unknown:
            raise ConfigError(f"{cls.__name__}.from_pretrained does not take {', '.join(unknown)}; it loads a lab "
                              f"decoder folder (arguments: subfolder, torch_dtype, device_map, teacher).")
        path = Path(pretrained_model_name_or_path).expanduser()
        if subfolder:
            path = path / subfolder
        vae = load_diffusers_vae(str(path), teacher=teacher, device=device_map, dtype=torch_dtype)
        if cls is not DiffusersVAE and not isinstance(vae, cls):
            raise LabError(f"{path} holds a {vae.family} decoder; load it with {type(vae).__name__} (or "
                           f"DiffusersVAE.from_pretrained, which picks the class).")
        return vae


#: pipeline API name (Architecture.pipeline_api) -> its facade class; each family registers its own
#: (``register_facade``), with the diffusers classes whose encoder can serve it and how they normalise latents.
_CLASSES: dict[str, type] = {}


def register_facade(cls: type) -> type:
    """A DiffusersVAE subclass for the pipeline API ``cls.family``, declaring ``teacher_classes()`` (the diffusers
    VAE classes whose encoder serves it) and ``latent_channels`` (the latent spaces of decoders with no family,
    the lightweight ones, that take this API)."""
    _CLASSES[cls.family] = cls
    # Saved pipelines name their VAE's class by module (model_index.json: ["lab.models.diffusers_compat",
    # "WanDiffusersVAE"]), and diffusers loads it back by importing that module: every facade presents
    # itself as this module's (its module __getattr__ serves them), wherever its family defines it. (diffusers
    # would also mistake a family module path such as lab.families.wan.pipeline for its own "wan" pipelines.)
    cls.__module__ = __name__
    return cls


def facades() -> dict[str, type]:
    load_families()
    return _CLASSES


def __getattr__(name: str):
    # Saved pipelines name a facade by this module (model_index.json: ["lab.models.diffusers_compat",
    # "WanDiffusersVAE"]); the facades now live with their families, registered by name. Not for dunder names:
    # the import system probes ``__path__`` while a family's facade module imports this one, and loading the
    # families from there would import that family again, half-initialised.
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for cls in facades().values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def as_diffusers_vae(decoder: VideoDecoder | str, teacher=None) -> DiffusersVAE:
    """``pipe.vae = as_diffusers_vae(student, teacher=pipe.vae)``: a lab decoder (object, name or saved folder)
    as a diffusers VAE. ``teacher`` supplies ``encode`` (image- and video-to-video pipelines); without it the
    teacher the decoder records is loaded on the first ``encode``."""
    if isinstance(decoder, (str, os.PathLike)):
        decoder = load_decoder(str(decoder))
    return DiffusersVAE.from_decoder(decoder, teacher=teacher)


def load_diffusers_vae(folder: str | os.PathLike, teacher=None, device=None, dtype=None) -> DiffusersVAE:
    """``load_diffusers_vae("runs/flash/best")``: a decoder folder saved by the lab (or a registered name) as a
    diffusers VAE, on ``device`` in ``dtype`` (folded-norm buffers stay float32). With a teacher VAE (e.g.
    ``teacher=pipe.vae``) and no ``device``/``dtype``, the decoder is loaded on the teacher's device and dtype,
    so one ``vae.dtype`` serves the pipeline's encode and decode."""
    if isinstance(teacher, torch.nn.Module) and device is None and dtype is None:
        p = next(teacher.parameters())
        device, dtype = p.device, p.dtype
    return as_diffusers_vae(load_decoder(str(folder), device=device, dtype=dtype), teacher=teacher)
