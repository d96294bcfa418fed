"""Every decoder the lab knows by name. Imported by lab.models (its __init__), after the registry.

Teachers are diffusers' own classes; mini teachers are the same classes at reduced width, trained
by the lab on real clips (``python -m lab teacher train``) and shipped in ``data/checkpoints``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffusers import AutoencoderKLLTX2Video, AutoencoderKLLTXVideo, AutoencoderKLWan

from lab import paths
from lab.errors import WeightsNotFoundError
from lab.models.registry import ModelEntry, register, register_adapter, register_alias
from lab.models.teachers import (LTX09_CONFIG, LTX_TINY_CONFIG, WAN21_CONFIG, WAN_TINY_CONFIG,
                                 LTXDecoderAdapter, WanDecoderAdapter)
from lab.models.teachers import LTX2_CONFIG, LTX2_TINY_CONFIG, LTX2DecoderAdapter
from lab.models.weights import count_params, load_diffusers_model

register_adapter("wan", WanDecoderAdapter)
register_adapter("ltx", LTXDecoderAdapter)
register_adapter("ltx-2", LTX2DecoderAdapter)
import lab.models.students  # noqa: E402,F401  (registers the student adapters)

WAN_HUB = ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "vae")
LTX_HUB = ("Lightricks/LTX-Video", "vae")
LTX2_HUB = ("Lightricks/LTX-2", "vae")

# Mini teachers: same classes and latent geometry as the real ones, reduced widths (see
# data/checkpoints/<name>/README.md for how the shipped weights were trained). Base width 32: at 12.5% their
# narrowest pruned stage (up3, 32 channels) keeps 4 channels, so a pruning comparison measures selection, not
# noise. The deep stages stay at 64 channels (Wan dim_mult 1,2,2,2 rather than 1,2,4,4): the high-resolution
# stages, where decoding spends its time and where Flash-VAED prunes, are widened, and the fp16 weights stay
# under 10 MiB (the repository carries them, and a device run returns files of at most 16 MiB). Trained on a
# GPU by scripts/gpu/run.sh.
MINI_WAN_CONFIG = {"base_dim": 32, "decoder_base_dim": 32, "z_dim": 16, "dim_mult": [1, 2, 2, 2]}
MINI_LTX_CONFIG = {
    "block_out_channels": (32, 64, 64, 64),
    "decoder_block_out_channels": (32, 64, 64, 64),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
}
#: Former names of the mini teachers (the wide teachers were 'mini-*-w32' until they became the defaults):
#: a decoder saved then still finds its teacher. Not listed by `lab models`: one name per thing.
MINI_ALIASES = {"mini-wan-w32": "mini-wan", "mini-ltx-w32": "mini-ltx"}


def _teacher(name, cls, adapter, config, *, hub=None, checkpoint: str | None = None, hub_by_default: bool = True):
    def loader(weights=None, device=None, dtype=None):
        if weights is None and checkpoint is not None:
            folder = paths.checkpoints_dir() / checkpoint
            if not (folder / "config.json").exists():
                raise WeightsNotFoundError(
                    f"{name}: the trained weights are missing ({folder}/config.json and "
                    f"diffusion_pytorch_model.safetensors). They ship with the repository; restore them with "
                    f"git checkout -- {Path('data/checkpoints') / checkpoint}, train new ones with "
                    f"python -m lab teacher train --model {name}, or pass --weights random.")
            weights = str(folder)
        if weights is None and hub is not None and hub_by_default:
            weights = hub[0]
        if weights is None:
            weights = "random"
        vae = load_diffusers_model(cls, weights, config=config, hub_subfolder=hub[1] if hub else None,
                                   what=f"{name} ({cls.__name__})", device=device, dtype=dtype)
        return adapter(name, vae)
    return loader


def _decoder_parts(cls) -> list[str]:
    return ["post_quant_conv", "decoder"] if cls is AutoencoderKLWan else ["decoder"]


def _add_teacher(name, cls, adapter, config, *, channels, compression, weights_text, description, tags=(),
                 hub=None, checkpoint=None, hub_by_default=True):
    register(ModelEntry(
        name=name, family="teacher", latent_channels=channels, compression=compression,
        weights=weights_text,
        loader=_teacher(name, cls, adapter, config, hub=hub, checkpoint=checkpoint, hub_by_default=hub_by_default),
        param_counter=lambda: count_params(cls, config, _decoder_parts(cls)),
        description=description, tags=tuple(tags)))


_add_teacher("wan2.1", AutoencoderKLWan, WanDecoderAdapter, WAN21_CONFIG, channels=16, compression=(4, 8, 8),
             hub=WAN_HUB,
             weights_text=f"hub {WAN_HUB[0]} (subfolder {WAN_HUB[1]}); or --weights FOLDER|FILE; or --weights random",
             description="Wan 2.1 VAE decoder (diffusers AutoencoderKLWan, default config), causal 3D convs")
_add_teacher("ltx-video", AutoencoderKLLTXVideo, LTXDecoderAdapter, LTX09_CONFIG, channels=128,
             compression=(8, 32, 32), hub=LTX_HUB,
             weights_text=f"hub {LTX_HUB[0]} (subfolder {LTX_HUB[1]}); or --weights FOLDER|FILE; or --weights random",
             description="LTX-Video 0.9 VAE decoder (diffusers AutoencoderKLLTXVideo, default config)")
# LTX-2: random weights unless asked for the hub's (--weights Lightricks/LTX-2, subfolder vae), a folder or
# a file: the VAE is 1.2B parameters (4.9 GB in fp32) and the lab's LTX-2 work runs on random weights.
_add_teacher("ltx-2", AutoencoderKLLTX2Video, LTX2DecoderAdapter, LTX2_CONFIG, channels=128,
             compression=(8, 32, 32), hub=LTX2_HUB, hub_by_default=False,
             weights_text=f"random unless asked: --weights {LTX2_HUB[0]} (hub, subfolder {LTX2_HUB[1]}) | FOLDER | FILE",
             description="LTX-2 video VAE decoder (diffusers AutoencoderKLLTX2Video, default config), causal, "
                         "3 residual up blocks")
_add_teacher("mini-wan", AutoencoderKLWan, WanDecoderAdapter, MINI_WAN_CONFIG, channels=16, compression=(4, 8, 8),
             checkpoint="mini-wan",
             weights_text="data/checkpoints/mini-wan (trained by the lab on a GPU, real clips + photos)",
             description="the lab's trained mini Wan-architecture VAE (base width 32: up3 keeps 4 channels at "
                         "12.5%), the embedded default", tags=("mini",))
_add_teacher("mini-ltx", AutoencoderKLLTXVideo, LTXDecoderAdapter, MINI_LTX_CONFIG, channels=128,
             compression=(8, 32, 32), checkpoint="mini-ltx",
             weights_text="data/checkpoints/mini-ltx (trained by the lab on a GPU, real clips + photos)",
             description="the lab's trained mini LTX-architecture VAE (widths 32-64)", tags=("mini",))
for _old, _new in MINI_ALIASES.items():
    register_alias(_old, _new)
_add_teacher("wan2.1-tiny", AutoencoderKLWan, WanDecoderAdapter, WAN_TINY_CONFIG, channels=16,
             compression=(4, 8, 8), weights_text="random (test config of the real class)",
             description="Wan 2.1 architecture at base width 8, for tests", tags=("test",))
_add_teacher("ltx-video-tiny", AutoencoderKLLTXVideo, LTXDecoderAdapter, LTX_TINY_CONFIG, channels=128,
             compression=(8, 32, 32), weights_text="random (test config of the real class)",
             description="LTX-Video architecture at widths 8-32, one layer per block, for tests", tags=("test",))
_add_teacher("ltx-2-tiny", AutoencoderKLLTX2Video, LTX2DecoderAdapter, LTX2_TINY_CONFIG, channels=128,
             compression=(8, 32, 32), weights_text="random (test config of the real class)",
             description="LTX-2 architecture at decoder widths 64-8, one layer per block, for tests", tags=("test",))

# Wan 2.2 (TI2V-5B VAE, residual up blocks, lab.arch.wan22): random weights unless asked for the hub's
# (--weights Wan-AI/Wan2.2-TI2V-5B-Diffusers, subfolder vae), a folder or a file.
from lab.models.wan22 import WAN22_CONFIG, WAN22_HUB, WAN22_TINY_CONFIG, Wan22DecoderAdapter  # noqa: E402

register_adapter(Wan22DecoderAdapter.adapter_kind, Wan22DecoderAdapter)
_add_teacher("wan2.2", AutoencoderKLWan, Wan22DecoderAdapter, WAN22_CONFIG, channels=48, compression=(4, 16, 16),
             hub=WAN22_HUB, hub_by_default=False,
             weights_text=f"random unless asked: --weights {WAN22_HUB[0]} (hub, subfolder {WAN22_HUB[1]}) | FOLDER | FILE",
             description="Wan 2.2 TI2V-5B VAE decoder (diffusers AutoencoderKLWan, is_residual, 48 channels, "
                         "patch size 2), causal")
_add_teacher("wan2.2-tiny", AutoencoderKLWan, Wan22DecoderAdapter, WAN22_TINY_CONFIG, channels=48,
             compression=(4, 16, 16), weights_text="random (test config of the real class)",
             description="Wan 2.2 architecture at decoder widths 64-16, for tests", tags=("test",))

# TAEF2 (madebyollin/taesd, MIT): a real image decoder trained at scale by someone else, decoded frame by
# frame (lab.arch.taef2). Its weights are not shipped: a folder holding taef2_decoder.pth and
# taef2_encoder.pth (../shared/assets/weights/taef2 where present), or random weights.
from lab.models.taef2 import TAEF2DecoderAdapter, TAEF2Model, TAEF2StudentAdapter, load_released  # noqa: E402

register_adapter(TAEF2DecoderAdapter.adapter_kind, TAEF2DecoderAdapter)
register_adapter(TAEF2StudentAdapter.adapter_kind, TAEF2StudentAdapter)


def _taef2_folder() -> Path | None:
    shared = paths.shared_assets_dir()
    return shared / "weights" / "taef2" if shared is not None and (shared / "weights" / "taef2").is_dir() else None


def _load_taef2(weights=None, device=None, dtype=None):
    if weights == "random":
        vae = TAEF2Model()
    else:
        folder = weights or _taef2_folder()
        if folder is None:
            raise WeightsNotFoundError("taef2: no weights here; pass --weights FOLDER holding taef2_decoder.pth and "
                                       "taef2_encoder.pth (madebyollin/taesd on GitHub, MIT), or --weights random.")
        vae = load_released(folder)
    dec = TAEF2DecoderAdapter("taef2", vae)
    return dec.to(device=device, dtype=dtype) if (device or dtype) else dec


register(ModelEntry(
    name="taef2", family="teacher", latent_channels=32, compression=(1, 8, 8),
    weights="--weights FOLDER (taef2_decoder.pth + taef2_encoder.pth, madebyollin/taesd); ../shared/assets/"
            "weights/taef2 where present; or --weights random",
    loader=_load_taef2, param_counter=lambda: sum(p.numel() for p in TAEF2Model(with_encoder=False).parameters()),
    description="TAEF2, the tiny FLUX.2 image autoencoder (TAESD layout, 32 channels at /8), decoded frame by "
                "frame; a real decoder trained by someone else", tags=("real",)))

# Lightweight decoders (TAE-192, EfficientViT, TAE-Temporal) for every latent space above.
from lab.models.lightweight.variants import register_all as _register_lightweight  # noqa: E402

_register_lightweight()


# Trained students shipped in data/checkpoints (distilled by the lab; see each folder's README card).
def _add_shipped_student(name: str, description: str, channels: int = 16,
                         compression: tuple[int, int, int] = (4, 8, 8)) -> None:
    folder = paths.checkpoints_dir() / name
    if not (folder / "config.json").exists():
        return  # not shipped in this checkout: nothing to list

    def load(weights=None, device=None, dtype=None):
        from lab.errors import ConfigError
        from lab.models.registry import load_saved
        if weights == "random":
            raise ConfigError(f"{name} is a trained student; there is no random version of it. Build a fresh "
                              f"student from its teacher with python -m lab prune (or distill), or pass a folder.")
        src = Path(weights).expanduser() if weights else folder
        if not src.is_dir():
            raise WeightsNotFoundError(f"{name}: {src} is not a saved student folder (lab_decoder.json + config.json "
                                       f"+ safetensors, as python -m lab distill writes to RUN/best or RUN/last).")
        dec = load_saved(src, device=device, dtype=dtype)
        dec.name = name
        return dec

    register(ModelEntry(
        name=name, family="student", latent_channels=channels, compression=compression,
        weights=f"data/checkpoints/{name} (distilled by the lab)", loader=load,
        param_counter=lambda: load().decoder_params(), description=description, tags=("mini",)))


_add_shipped_student("mini-wan-flash", "Flash-VAED student of mini-wan: up2/up3 at 12.5% (independence-aware), "
                                       "flash-vaed operators, three-phase distillation")
_add_shipped_student("mini-ltx-flash", "Flash-VAED student of mini-ltx: keep=flash-vaed (independence-aware), "
                                       "flash-vaed operators, three-phase distillation",
                     channels=128, compression=(8, 32, 32))


# The Flash-VAED student architectures of the full-size teachers, built from config (the authors' widths and
# operators; channel choice does not change speed): what the lab times and traces against the teachers.
def _flash_of(teacher: str, cls, config: dict, module):
    """(loader, parameter counter) of ``TEACHER-flash``: ``module`` is the student family's module (its
    ``flash_vaed_student_vae`` and student adapter)."""
    def load(weights=None, device=None, dtype=None):
        from lab.models.registry import load_saved
        name = f"{teacher}-flash"
        if weights not in (None, "random"):
            dec = load_saved(Path(weights).expanduser(), device=device, dtype=dtype)
            if getattr(dec, "teacher_name", None) != teacher:
                raise WeightsNotFoundError(f"{name}: {weights} holds {dec.name} (a student of "
                                           f"{getattr(dec, 'teacher_name', None) or 'no teacher'}), not a student of "
                                           f"{teacher}; load it by its folder instead.")
            return dec
        with torch.device("meta"):
            skeleton = cls(**config)
        dec = module.student_adapter(name, module.flash_vaed_student_vae(teacher, skeleton))
        return dec.to(device=device, dtype=dtype) if (device or dtype) else dec

    def params() -> int:
        with torch.device("meta"):
            return load().decoder_params()
    return load, params


def _add_flash(teacher: str, cls, config: dict, module, channels: int, compression: tuple, what: str) -> None:
    load, params = _flash_of(teacher, cls, config, module)
    register(ModelEntry(
        name=f"{teacher}-flash", family="student", latent_channels=channels, compression=compression,
        weights=f"random (the architecture, for speed work); or --weights FOLDER (a saved student of {teacher})",
        loader=load, param_counter=params,
        description=f"the Flash-VAED student architecture of {what}, built from config: what the lab times and "
                    f"traces against the teacher"))


from lab.models.students import ltx as _ltx_students, wan as _wan_students  # noqa: E402

_add_flash("wan2.1", AutoencoderKLWan, WAN21_CONFIG, _wan_students, 16, (4, 8, 8),
           "Wan 2.1 (up2/up3 at 12.5%, flash-vaed operators)")
_add_flash("ltx-video", AutoencoderKLLTXVideo, LTX09_CONFIG, _ltx_students, 128, (8, 32, 32),
           "LTX-Video 0.9 (up2/up3 at 25%, flash-vaed operators)")
