"""VAED Lab: make the VAE decoders of video diffusion models fast, and show how.

The method flows one way: analysis -> prune -> ops (operator swap) -> distill -> eval -> runtime.
Data flows one way: clips -> teacher encode -> latents -> decoders -> metrics.

The main entry points are importable from here (``from lab import load_decoder, prune``) and are
imported only when first used, so ``import lab`` does not import torch (lab.entrypoints):

- ``load_decoder``: a registered decoder or a saved folder (lab.models.registry)
- ``analyze``: channel-independence analysis with live hooks (lab.analysis.run)
- ``prune``: a pruned (and operator-swapped) student of a teacher (lab.prune.build)
- ``distill``: three-phase distillation into a run folder (lab.distill.run)
- ``evaluate``: a decoder's metrics on a real clip (lab.eval.evaluate)
- ``bench``: decoders timed on one shape (lab.eval.bench)
- ``as_diffusers_vae``: a lab decoder as a diffusers VAE (lab.models.diffusers_compat)
"""

from lab.entrypoints import ENTRY_POINTS as _ENTRY_POINTS, resolve as _resolve

__version__ = "0.1.0"
# Spelled out (tools read __all__ without running this file); tests/test_entrypoints.py keeps it equal to
# lab.entrypoints.ENTRY_POINTS.
__all__ = ["__version__", "load_decoder", "analyze", "prune", "distill", "evaluate", "bench", "as_diffusers_vae"]


def __getattr__(name: str):
    # Called only for names not yet bound: each entry point is imported on first use, then kept.
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'lab' has no attribute '{name}'")
    value = _resolve(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENTRY_POINTS))
