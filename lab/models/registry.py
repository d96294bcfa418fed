"""The registry of named decoders (timm-style): each entry knows its family, latent geometry,
decoder parameter count and where its weights come from, and can load itself.

``python -m lab models`` lists it. Each VAE family (lab/families, lab.plugins) registers its entries, saved-folder
adapters and plain-diffusers-folder classes here; lab.models.entries has the helpers they use.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab.errors import CheckpointError, UnknownModelError
from lab.models.interface import LAB_META_FILE, VideoDecoder
from lab.plugins import load_families
from lab.runtime.spec import Runtime, apply_runtime, default_runtime, split_runtime

log = logging.getLogger("lab")


@dataclass
class ModelEntry:
    name: str
    family: str  # teacher / student / lightweight
    latent_channels: int
    compression: tuple[int, int, int]
    weights: str  # human-readable: where the default weights come from
    #: load(weights_source or None, device, dtype) -> VideoDecoder
    loader: Callable[..., VideoDecoder]
    #: () -> int, computed lazily (full-size models are counted on the meta device)
    param_counter: Callable[[], int]
    description: str = ""
    tags: tuple[str, ...] = ()
    #: whether ``weights="random"`` builds it (False: a trained model that exists only with its weights)
    random_weights: bool = True
    _params: int | None = field(default=None, repr=False)

    def decoder_params(self) -> int:
        if self._params is None:
            self._params = int(self.param_counter())
        return self._params

    def describe(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "latent_channels": self.latent_channels,
            "compression": list(self.compression),
            "decoder_params": self.decoder_params(),
            "weights": self.weights,
            "description": self.description,
            "tags": list(self.tags),
        }

    def load(self, weights: str | None = None, device=None, dtype=None) -> VideoDecoder:
        dec = self.loader(weights, device=device, dtype=dtype)
        dec.eval()
        return dec


_REGISTRY: dict[str, ModelEntry] = {}
_ADAPTERS: dict[str, type] = {}
#: former name -> registered name: loads resolve them quietly, listings do not show them (one name per thing)
_ALIASES: dict[str, str] = {}


def register(entry: ModelEntry) -> ModelEntry:
    _REGISTRY[entry.name] = entry
    return entry


def register_alias(old: str, new: str) -> None:
    """``old`` (a retired name, e.g. recorded as the teacher of a decoder saved under it) loads ``new``."""
    _ALIASES[old] = new


def resolve_alias(name: str) -> str:
    """The registered name a former name now means (itself if none)."""
    load_families()
    return _ALIASES.get(name, name)


def former_names(name: str) -> list[str]:
    """The retired names that still load ``name`` (``register_alias``), e.g. for its model card."""
    load_families()
    return sorted(old for old, new in _ALIASES.items() if new == name)


def register_adapter(kind: str, cls: type) -> None:
    """Adapters load folders saved by the lab (``lab_decoder.json`` names the kind)."""
    _ADAPTERS[kind] = cls


def list_entries(family: str | None = None) -> list[ModelEntry]:
    load_families()
    return [e for e in _REGISTRY.values() if family is None or e.family == family]


def get_entry(name: str) -> ModelEntry:
    load_families()
    name = _ALIASES.get(name, name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown decoder '{name}'.{hint} Registered: {', '.join(sorted(_REGISTRY))} "
        f"(python -m lab models), or pass a folder saved by the lab.")


def load_decoder(name_or_path: str | VideoDecoder, weights: str | None = None, device=None,
                 dtype=None) -> VideoDecoder:
    """A registered name (``weights`` overrides its default source), or a folder saved by the lab, either
    with a fixed runtime suffix (``wan2.1@fused``, ``mini-wan@chunk4``: lab.runtime.spec). A VideoDecoder
    passes through unchanged."""
    if isinstance(name_or_path, VideoDecoder):
        return name_or_path
    spec = str(name_or_path)
    name, runtime = read_name(spec)
    if runtime is not None:
        if runtime.searched:
            raise UnknownModelError(f"'{spec}': @fast and @compile-auto choose by timing on latents; give a fixed "
                                    f"runtime (@chunkK, @fused, @compile-MODE) or time them with python -m lab bench")
        return apply_runtime(load_decoder(name, weights, device, dtype), runtime)
    if name in _REGISTRY:
        return _REGISTRY[name].load(weights, device=device, dtype=dtype)
    path = Path(name).expanduser()
    if path.is_dir():
        return load_saved(path, device=device, dtype=dtype)
    get_entry(name)  # raises UnknownModelError with suggestions
    raise AssertionError("unreachable")


def read_name(spec: str) -> tuple[str, Runtime | None]:
    """How ``load_decoder`` reads a name: (the registered name or folder, the runtime its suffix names or None).
    A registered name (aliases resolved) or an existing folder is taken whole, '@' and all; otherwise
    ``NAME@RUNTIME`` is split (lab.runtime.spec; ``NAME@eager`` gives the empty Runtime, not None)."""
    load_families()
    name = _ALIASES.get(spec, spec)
    if "@" not in name or name in _REGISTRY or Path(name).expanduser().is_dir():
        return name, None
    return split_runtime(name)


def load_for_decoding(name_or_path: str | VideoDecoder, weights: str | None = None, device=None,
                      dtype=None) -> VideoDecoder:
    """``load_decoder`` for the commands that only decode (``lab decode``, ``lab eval``): a name or folder given
    without a runtime suffix runs under ``lab.runtime.spec.default_runtime`` (``@fused`` where its family has
    measured it within tolerance and faster: Wan 2.1 on the CPU); ``NAME@eager`` keeps diffusers' modules.
    Analysis, pruning and training load with ``load_decoder``: their hooks and gradients need the eager modules.
    A VideoDecoder passes through unchanged."""
    dec = load_decoder(name_or_path, weights, device, dtype)
    if isinstance(name_or_path, str) and read_name(name_or_path)[1] is None:
        runtime = default_runtime(dec)
        if runtime is not None:
            apply_runtime(dec, runtime)
            log.info("%s decodes @fused, the default on %s (the same output within a rounding; %s@eager runs "
                     "diffusers' modules)", dec.name, dec.device.type, name_or_path)
    return dec


def load_saved(folder: Path, device=None, dtype=None) -> VideoDecoder:
    meta_path = folder / LAB_META_FILE
    if not meta_path.exists():
        if (folder / "config.json").exists() or (folder / "vae" / "config.json").exists():
            return _wrap_plain_diffusers_folder(folder, device, dtype)
        raise UnknownModelError(
            f"{folder} is not a decoder folder: it has no {LAB_META_FILE} (written by the lab's save()) and no "
            f"diffusers config.json.")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{meta_path} is corrupted ({exc}); re-save the decoder.") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("adapter"), str):
        raise CheckpointError(f"{meta_path} is corrupted: expected a JSON object naming its 'adapter', got "
                              f"{json.dumps(meta)[:80]}; re-save the decoder.")
    kind = meta["adapter"]
    load_families()
    if kind not in _ADAPTERS:
        raise CheckpointError(f"{folder} was saved by an adapter '{kind}' this lab does not know "
                              f"(known: {', '.join(sorted(_ADAPTERS))}); update the lab.")
    try:
        dec = _ADAPTERS[kind].from_saved(folder, meta)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # TypeError: a field of the wrong type
        raise CheckpointError(f"could not load the decoder saved at {folder}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}. The files may be corrupted "
                              f"or from a different model; re-save it.") from exc
    dec = dec.to(device=device, dtype=dtype) if (device or dtype) else dec
    return dec.eval()


#: diffusers VAE class name -> [(matches(config) -> bool, load(folder, config, device, dtype) -> decoder)], the
#: first match wins: how a plain diffusers folder loads as a teacher. Each family registers its class.
_FOLDER_CLASSES: dict[str, list[tuple[Callable[[dict], bool], Callable]]] = {}


def register_folder_class(class_name: str, load: Callable, matches: Callable[[dict], bool] | None = None,
                          first: bool = False) -> None:
    """A plain diffusers folder whose config names ``class_name`` (and, with ``matches``, whose config it
    accepts) loads through ``load(folder, config, device, dtype)``. ``first``: tried before the class's earlier
    registrations (Wan 2.2 refines Wan 2.1's VAE class by ``is_residual``)."""
    rows = _FOLDER_CLASSES.setdefault(class_name, [])
    row = (matches or (lambda cfg: True), load)
    rows.insert(0, row) if first else rows.append(row)


def _wrap_plain_diffusers_folder(folder: Path, device, dtype) -> VideoDecoder:
    """A plain diffusers VAE folder (e.g. a downloaded Wan 2.1 'vae' folder) loads as a teacher."""
    load_families()
    cfg_path = folder / "config.json" if (folder / "config.json").exists() else folder / "vae" / "config.json"
    cfg = _config(cfg_path)
    cls_name = str(cfg.get("_class_name") or "")
    for matches, load in _FOLDER_CLASSES.get(cls_name, []):
        if matches(cfg):
            return load(folder, cfg, device, dtype).eval()
    raise UnknownModelError(f"{folder} holds a {cls_name or 'model of unknown class'}; the lab decodes "
                            f"with {', '.join(_FOLDER_CLASSES)} folders or folders it saved itself.")


def _config(cfg_path: Path) -> dict:
    """A diffusers config.json, or a CheckpointError saying the file is broken."""
    try:
        cfg = json.loads(cfg_path.read_text())
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({exc}); restore the folder's config.json "
                              f"(download it again, or save the VAE again with save_pretrained).") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path} is not a diffusers config (a JSON object with _class_name); restore "
                              f"the folder's config.json (download it again, or save the VAE with save_pretrained).")
    return cfg
