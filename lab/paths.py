"""Where the lab keeps things on disk. ``LAB_DATA_DIR`` overrides the repository's ``data/``."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("LAB_DATA_DIR", REPO_ROOT / "data"))


def checkpoints_dir() -> Path:
    return data_dir() / "checkpoints"


def samples_dir() -> Path:
    """Fetched sample clips (git-ignored)."""
    return data_dir() / "samples"


def bundled_clips_dir() -> Path:
    """Small real clips committed to the repository (the embedded default)."""
    return data_dir() / "clips"


def shared_assets_dir() -> Path | None:
    """../shared/assets beside the checkout, when present (tests and checks only)."""
    p = Path(os.environ.get("LAB_SHARED_ASSETS", REPO_ROOT.parent / "shared" / "assets"))
    return p if p.is_dir() else None
