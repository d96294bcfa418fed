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

Tiling and slicing are diffusers' own (same method names, flags and defaults as ``AutoencoderKLWan``
and ``AutoencoderKLLTXVideo``): overlapping spatial tiles blended linearly, and batch slicing. Wan
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
import diffusers
from diffusers import AutoencoderKLWan

from lab.errors import ConfigError, LabError
from lab.models.interface import VideoDecoder
from lab.models import load_decoder

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


# ----- diffusers' blend helpers (AutoencoderKLWan / AutoencoderKLLTXVideo .blend_v/_h/_t), as functions --------
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
    return "ltx" if decoder.geometry.channels == 128 else "wan"


def _teacher_classes(family: str) -> tuple[type, ...]:
    """The diffusers VAE classes whose encoder can serve a family's decoders (Wan 2.1 and 2.2 share
    AutoencoderKLWan; LTX-2's VAE has LTX-Video's API and normalisation)."""
    names = _CLASSES[family].teacher_class_names
    return tuple(getattr(diffusers, n) for n in names if hasattr(diffusers, n))


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
    """(latents_mean, latents_std, scaling_factor) of a diffusers Wan or LTX-Video VAE, as its pipelines use them."""
    if isinstance(vae, AutoencoderKLWan):
        return (torch.tensor(vae.config.latents_mean, dtype=torch.float32),
                torch.tensor(vae.config.latents_std, dtype=torch.float32), 1.0)
    return vae.latents_mean.detach().float().cpu(), vae.latents_std.detach().float().cpu(), \
        float(vae.config.scaling_factor)


class DiffusersVAE(ModelMixin, AutoencoderMixin, ConfigMixin):
    """Wraps a lab :class:`~lab.models.interface.VideoDecoder` behind diffusers' VAE API.

    Build it with :meth:`from_decoder`, :func:`as_diffusers_vae` or :func:`load_diffusers_vae`; it is a
    :class:`WanDiffusersVAE` or an :class:`LTXDiffusersVAE` after the decoder's latent space, each with
    its diffusers class's tiling API."""

    #: "wan" or "ltx": which teacher class, tiling API and defaults
    family: str = ""

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
        ``AutoencoderKLWan``/``AutoencoderKLLTXVideo`` (e.g. the pipeline's own ``pipe.vae``), a lab teacher, or a
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
        """diffusers' tiled decode (AutoencoderKLWan/AutoencoderKLLTXVideo.tiled_decode): latent tiles of
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


class WanDiffusersVAE(DiffusersVAE):
    """The facade of a Wan-family decoder: ``AutoencoderKLWan``'s API (tiling defaults 256/192 pixels)."""

    family = "wan"
    teacher_class_names = ("AutoencoderKLWan",)
    _default_tiles = (256, 192)

    def _init_tiling(self) -> None:
        # AutoencoderKLWan's defaults.
        self.tile_sample_min_height = 256
        self.tile_sample_min_width = 256
        self.tile_sample_stride_height = 192
        self.tile_sample_stride_width = 192

    def enable_tiling(self, tile_sample_min_height: int | None = None, tile_sample_min_width: int | None = None,
                      tile_sample_stride_height: float | None = None,
                      tile_sample_stride_width: float | None = None) -> None:
        """As ``AutoencoderKLWan.enable_tiling``: decode (and encode) in spatial tiles of ``tile_sample_min_*``
        pixels at stride ``tile_sample_stride_*`` when the video is larger than one tile. Unset values keep
        their current setting."""
        self.use_tiling = True
        self.tile_sample_min_height = tile_sample_min_height or self.tile_sample_min_height
        self.tile_sample_min_width = tile_sample_min_width or self.tile_sample_min_width
        self.tile_sample_stride_height = tile_sample_stride_height or self.tile_sample_stride_height
        self.tile_sample_stride_width = tile_sample_stride_width or self.tile_sample_stride_width
        self._check_tiles()


class LTXDiffusersVAE(DiffusersVAE):
    """The facade of an LTX-Video-family decoder: ``AutoencoderKLLTXVideo``'s API (tiling defaults 512/448
    pixels, 16/8 frames for framewise decoding)."""

    family = "ltx"
    teacher_class_names = ("AutoencoderKLLTXVideo", "AutoencoderKLLTX2Video")
    _default_tiles = (512, 448)

    def _init_tiling(self) -> None:
        # AutoencoderKLLTXVideo's defaults.
        self.use_framewise_encoding = False
        self.use_framewise_decoding = False
        self.num_sample_frames_batch_size = 16
        self.num_latent_frames_batch_size = 2
        self.tile_sample_min_height = 512
        self.tile_sample_min_width = 512
        self.tile_sample_min_num_frames = 16
        self.tile_sample_stride_height = 448
        self.tile_sample_stride_width = 448
        self.tile_sample_stride_num_frames = 8

    def enable_tiling(self, tile_sample_min_height: int | None = None, tile_sample_min_width: int | None = None,
                      tile_sample_min_num_frames: int | None = None, tile_sample_stride_height: float | None = None,
                      tile_sample_stride_width: float | None = None,
                      tile_sample_stride_num_frames: float | None = None) -> None:
        """As ``AutoencoderKLLTXVideo.enable_tiling``: spatial tiles of ``tile_sample_min_*`` pixels at stride
        ``tile_sample_stride_*``; the frame window settings apply when ``use_framewise_decoding`` is set."""
        self.use_tiling = True
        self.tile_sample_min_height = tile_sample_min_height or self.tile_sample_min_height
        self.tile_sample_min_width = tile_sample_min_width or self.tile_sample_min_width
        self.tile_sample_min_num_frames = tile_sample_min_num_frames or self.tile_sample_min_num_frames
        self.tile_sample_stride_height = tile_sample_stride_height or self.tile_sample_stride_height
        self.tile_sample_stride_width = tile_sample_stride_width or self.tile_sample_stride_width
        self.tile_sample_stride_num_frames = tile_sample_stride_num_frames or self.tile_sample_stride_num_frames
        self._check_tiles()

    def _tiling_attributes(self) -> tuple[str, ...]:
        return super()._tiling_attributes() + ("use_framewise_encoding", "use_framewise_decoding",
                                               "tile_sample_min_num_frames", "tile_sample_stride_num_frames")

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        t = self.temporal_compression_ratio
        if self.use_framewise_decoding and z.shape[2] > self.tile_sample_min_num_frames // t:
            return self._temporal_tiled_decode(z)
        return super()._decode(z)

    def _temporal_tiled_decode(self, z: torch.Tensor) -> torch.Tensor:
        """diffusers' ``AutoencoderKLLTXVideo._temporal_tiled_decode``: overlapping windows of latent frames
        (each spatially tiled when tiling is on), the overlap blended over ``min - stride`` frames."""
        t = self.temporal_compression_ratio
        num_sample_frames = (z.shape[2] - 1) * t + 1
        min_frames = self.tile_sample_min_num_frames // t
        stride_frames = self.tile_sample_stride_num_frames // t
        if stride_frames < 1 or min_frames < stride_frames:
            raise ConfigError(f"tile_sample_min_num_frames={self.tile_sample_min_num_frames} and "
                              f"tile_sample_stride_num_frames={self.tile_sample_stride_num_frames} must cover at least "
                              f"{t} frames each (the temporal compression), stride <= size (e.g. 16 and 8).")
        blend_frames = self.tile_sample_min_num_frames - self.tile_sample_stride_num_frames
        row = []
        for i in range(0, z.shape[2], stride_frames):
            tile = z[:, :, i:i + min_frames + 1]
            decoded = self._tiled_decode(tile) if self._wants_tiles(tile) else self.decoder._decode_raw(tile)
            if i > 0:
                decoded = decoded[:, :, :-1]
            row.append(decoded)
        out = []
        for i, tile in enumerate(row):
            if i > 0:
                out.append(blend_t(row[i - 1], tile, blend_frames)[:, :, :self.tile_sample_stride_num_frames])
            else:
                out.append(tile[:, :, :self.tile_sample_stride_num_frames + 1])
        return torch.cat(out, dim=2)[:, :, :num_sample_frames]

    def forward(self, sample: torch.Tensor, temb: torch.Tensor | None = None, sample_posterior: bool = False,
                return_dict: bool = True, generator: torch.Generator | None = None):
        """As ``AutoencoderKLLTXVideo.forward`` (``temb`` must be None: lab decoders are not timestep-conditioned)."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, temb, return_dict=return_dict)


_CLASSES = {"wan": WanDiffusersVAE, "ltx": LTXDiffusersVAE}


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


def tiny_wan_pipeline(vae, text_dim: int = 32, num_layers: int = 1, seed: int = 0):
    """A real ``diffusers.WanPipeline`` around ``vae`` (an ``AutoencoderKLWan`` or ``as_diffusers_vae(...)``)
    with a tiny random transformer (the one of diffusers' own WanPipeline tests) and no text encoder: call it
    with ``prompt_embeds`` of shape (B, L, text_dim). Its videos are what a random denoiser makes; it exists
    to show and test the VAE slot offline, where the decoding step is exactly the production one."""
    # deferred: the Wan pipeline classes need transformers (the 'pipelines' extra)
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    z = int(vae.config.z_dim)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=z, out_channels=z,
        text_dim=text_dim, freq_dim=256, ffn_dim=32, num_layers=num_layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe
