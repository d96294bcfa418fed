"""What the compare app may load. Its free-text fields (teacher, weights, saved students) name models on
the server, and anyone who can open the page can type into them, so they are confined:

- registered names (``python -m lab models``);
- files and folders inside the models folders the app was started with (``python -m lab app compare
  --models-dir DIR``, repeatable; default: the lab's data/checkpoints and ./runs), symlinks resolved;
- ``random`` for weights, and hub ids only when the app was started with ``--allow-downloads``.

Anything else gets one answer whether it is missing or forbidden, so the page tells nobody which paths
exist on the server. Without ``--allow-downloads`` the app also switches the Hugging Face hub to
offline mode for its whole process (``block_downloads``): weights already in the local cache still
load, nothing is fetched.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub.constants

from lab import paths
from lab.errors import LabError, WeightsNotFoundError
from lab.models.registry import list_entries

#: org/name, as the hub spells repository ids (checked by syntax only: never by looking at the disk)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
#: what a hub VAE needs: its config and safetensors, at the root or in a pipeline's vae/ (never pickles)
HUB_FILES = ["config.json", "diffusion_pytorch_model*.safetensors*", "vae/config.json",
             "vae/diffusion_pytorch_model*.safetensors*"]


class AccessError(LabError, ValueError):
    """A model or weights reference the app may not load (or that does not exist: the same answer)."""


def default_models_dirs() -> list[Path]:
    """The lab's shipped checkpoints and the runs folder of the directory the app starts in."""
    return [paths.checkpoints_dir(), Path.cwd() / "runs"]


@dataclass(frozen=True)
class ModelAccess:
    roots: tuple[Path, ...]
    allow_downloads: bool = False

    @classmethod
    def start(cls, models_dirs=None, allow_downloads: bool = False) -> "ModelAccess":
        """The policy for an app started with these folders (resolved now: later changes of the
        working directory or of a symlink to the folder do not widen it)."""
        dirs = list(models_dirs or default_models_dirs())
        return cls(tuple(Path(d).expanduser().resolve() for d in dirs), bool(allow_downloads))

    def describe(self) -> str:
        hub = "hub downloads allowed" if self.allow_downloads else "no hub downloads (--allow-downloads is off)"
        return f"models folders: {', '.join(str(r) for r in self.roots)}; {hub}"

    def decoder(self, ref) -> str:
        """A registered name as it is, or the real path of a folder inside a models folder."""
        ref = str(ref or "").strip()
        if _registered(ref):
            return ref
        found = self._find(ref)
        if found is None or not found.is_dir():
            raise AccessError(f"'{ref}' is not a registered decoder nor a saved folder this app may load; pick a "
                              f"registered name (python -m lab models) or a folder under the app's models folders "
                              f"(python -m lab app compare --models-dir DIR).")
        return str(found)

    def weights(self, ref) -> str | None:
        """None (the model's default), 'random', the real path of a file or folder inside a models
        folder, or (with downloads allowed) the local copy of a hub repository."""
        ref = str(ref or "").strip()
        if not ref or ref == "random":
            return ref or None
        found = self._find(ref)
        if found is not None:
            return str(found)
        if self.allow_downloads and HUB_ID.fullmatch(ref):
            return fetch_from_hub(ref)
        hub = "a hub id" if self.allow_downloads else "a hub id (only when the app is started with --allow-downloads)"
        raise AccessError(f"weights '{ref}' are not 'random', a file or folder this app may load, nor {hub}; leave "
                          f"the field empty for the model's own weights, or put them under the app's models folders "
                          f"(--models-dir DIR).")

    def _find(self, ref: str) -> Path | None:
        """The real path of ``ref`` (absolute, or relative to the working directory or to a models
        folder) when it exists inside a models folder. Existence is only ever checked inside them."""
        if not ref:
            return None
        try:
            p = Path(ref).expanduser()
            candidates = [p] if p.is_absolute() else [Path.cwd() / p] + [root / p for root in self.roots]
            for candidate in candidates:
                real = candidate.resolve()
                if any(real.is_relative_to(root) for root in self.roots) and real.exists():
                    return real
        except (OSError, ValueError, RuntimeError):  # a NUL byte, an unknown ~user, a symlink loop
            return None
        return None


def _registered(name: str) -> bool:
    return any(e.name == name for e in list_entries())


def fetch_from_hub(repo_id: str) -> str:
    """The local folder of a hub repository's VAE files (downloaded into the Hugging Face cache). The
    app passes this folder on, never the id, so an id can never be read as a path on the server."""
    from huggingface_hub import snapshot_download  # deferred: looked up per call, so it can be patched (tests)
    try:
        return snapshot_download(repo_id, allow_patterns=HUB_FILES)
    except Exception as exc:  # network, missing or gated repositories: the same to the user
        raise WeightsNotFoundError(f"could not download {repo_id} from the Hugging Face hub ({type(exc).__name__}); "
                                   f"check the id and the network, or put its VAE folder under the app's models "
                                   f"folders.") from None


def block_downloads() -> None:
    """Switch the Hugging Face hub to offline mode for this process and the processes it starts (the
    app measures CPU memory in fresh processes): every hub request fails at once, cached files load."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True
