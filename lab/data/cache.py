"""A latent cache: the frozen teacher's encoder run once over fixed windows, read back by training.

Distillation re-encodes every batch with a teacher that never changes. ``encode_cache`` does that work
once: fixed windows of each video of a spec (``per_file`` of them, ``frames`` long, ``stride`` frames
apart; the short side resized to ``size`` and a centered ``size`` x ``size`` square kept) are encoded
and written in shards of ``shard_windows``::

    CACHE/index.json                 what was cached (the spec) and the finished shards
    CACHE/shard-00000.safetensors    latents (N, C, t, h, w) and the matching uint8 frames (N, T, H, W, 3)

Each shard is written under a temporary name and renamed, then ``index.json`` is rewritten atomically
to list it: a killed run loses at most the shard it was writing, and running the same command again
continues after the last listed shard. A folder that is not empty and is not a cache of the same spec
is never written into (the lab does not overwrite what it did not write).

``LatentCache`` reads it: ``sample(batch, frames, crop, generator, step=s)`` returns (real, latents)
like ``lab.distill.data.TeacherBatches``, without running the encoder. Windows are drawn per
(seed, rank, step), rank r of w reading windows r, r + w, ... only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lab.data.clips import resize_short_side
from lab.data.dataset import NoUsableDataError, resolve_spec, spec_key
from lab.data.stream import log_once, probe_sources
from lab.data.video import read_window
from lab.errors import ConfigError, LabError
from lab.files import atomic_path, atomic_write_text
from lab.progress import Progress
from lab.runtime.fused.conv import onednn_conv3d

log = logging.getLogger("lab.data")

INDEX = "index.json"
FORMAT = "lab-latent-cache/1"
#: Shard files a reader keeps open at once (memory-mapped; the oldest is closed first).
MAX_OPEN_SHARDS = 64


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def cache_spec(teacher: str, teacher_weights, clips, manifest, *, frames: int, size: int, per_file: int,
               stride: int, shard_windows: int) -> dict:
    """Everything that decides a cache's content: a cache is continued only by a run with the same spec."""
    return {"teacher": teacher, "teacher_weights": teacher_weights, "clips": [str(c) for c in clips or ()],
            "manifest": str(manifest) if manifest else None, "data_key": spec_key(clips, manifest),
            "frames": frames, "size": size, "per_file": per_file, "stride": stride, "shard_windows": shard_windows}


def plan_windows(sources, *, frames: int, per_file: int, stride: int) -> list[tuple[str, int]]:
    """The fixed windows: (path, first frame), ``stride`` apart from each source's first frame."""
    out = []
    for s in sources:
        n = min(per_file, (s.frames - frames) // stride + 1) if s.frames >= frames else 0
        if not n:
            log_once(s.path, f"{s.name()}: {s.frames} frames, shorter than the {frames}-frame window")
        out += [(s.path, s.start + k * stride) for k in range(n)]
    return out


def read_index(folder: Path) -> dict | None:
    p = Path(folder) / INDEX
    if not p.is_file():
        return None
    try:
        index = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p} is not readable JSON ({exc}); it is not a latent cache the lab wrote.") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ConfigError(f"{p} is not a lab latent cache (format {FORMAT}).")
    return index


def open_cache_folder(out: Path, spec: dict) -> dict:
    """The index to continue: a new one for a missing or empty folder, the existing one for a cache of the
    same spec. Anything else is refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the cache.")
    index = read_index(out) if out.is_dir() else None
    if index is None:
        if out.is_dir() and any(out.iterdir()):
            raise ConfigError(f"--out {out} is not empty and holds no latent cache ({INDEX}); the lab does not write "
                              f"into folders it did not make. Give an empty or new folder.")
        return {"format": FORMAT, "spec": spec, "shards": [], "skipped": [], "complete": False}
    if index.get("spec") != spec:
        changed = sorted(k for k in set(spec) | set(index.get("spec", {}))
                         if spec.get(k) != index.get("spec", {}).get(k))
        raise ConfigError(f"--out {out} holds a latent cache of another spec (differs in {', '.join(changed)}); "
                          f"continue it with the same arguments, or give a new folder.")
    return index


def encode_cache(teacher: str, clips=(), manifest: str | None = None, *, out, frames: int, size: int,
                 per_file: int = 4, stride: int | None = None, shard_windows: int = 64, batch: int = 4,
                 teacher_weights: str | None = None, device: str = "cpu", stop_after_shards: int | None = None) -> dict:
    """Encode the fixed windows of a spec into ``out`` (resuming a killed run). Returns a summary.
    ``stop_after_shards`` stops after writing that many shards in this call (tests simulate a kill with it)."""
    from lab.models import load_decoder  # deferred: lab.models pulls in diffusers; reading a cache never needs it

    stride = stride or frames
    for k, v in (("frames", frames), ("size", size), ("per_file", per_file), ("stride", stride),
                 ("shard_windows", shard_windows), ("batch", batch)):
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{k} must be a positive integer, got {v!r}.")
    out = Path(out)
    spec = cache_spec(teacher, teacher_weights, clips, manifest, frames=frames, size=size, per_file=per_file,
                      stride=stride, shard_windows=shard_windows)
    index = open_cache_folder(out, spec)
    out.mkdir(parents=True, exist_ok=True)
    for tmp in [*out.glob(".shard-*.tmp"), *out.glob(f".{INDEX}.*")]:  # a killed run's half-written files
        tmp.unlink(missing_ok=True)
    if index["complete"]:
        return summary(out, index, encoded=0, seconds=0.0)

    model = load_decoder(teacher, weights=teacher_weights, device=device).eval()
    geo = model.geometry
    geo.latent_frames_for(frames)          # clear errors for a window the teacher cannot encode
    geo.latent_size_for(size, size)
    sources = probe_sources(resolve_spec(clips, manifest))
    windows = plan_windows(sources, frames=frames, per_file=per_file, stride=stride)
    if not windows:
        raise NoUsableDataError(f"no video of the spec has a {frames}-frame window (see the 'skipped' lines); "
                                f"nothing to encode.")
    info = {s.path: s for s in sources}
    n_shards = math.ceil(len(windows) / shard_windows)
    index["windows_planned"] = len(windows)
    done = {s["index"] for s in index["shards"]}
    encoded, t0, written = 0, time.perf_counter(), 0
    with Progress("data encode", n_shards - len(done), unit="shard") as bar:  # the shards a resumed cache still lacks
        for k in range(n_shards):
            if k in done:
                continue
            if stop_after_shards is not None and written >= stop_after_shards:
                return summary(out, index, encoded=encoded, seconds=time.perf_counter() - t0)
            cand = windows[k * shard_windows:(k + 1) * shard_windows]
            frames_u8, sources_kept = [], []
            for path, first in cand:
                try:
                    frames_u8.append(_fixed_window(path, first, frames, size, info[path].info))
                    sources_kept.append([path, first])
                except LabError as exc:  # a file cut short: skipped, logged once
                    log_once(path, str(exc))
                    index["skipped"].append([path, first])
            entry = {"index": k, "file": shard_name(k), "windows": len(frames_u8), "sources": sources_kept}
            if frames_u8:
                x = torch.from_numpy(np.stack(frames_u8))
                lat = []
                for i in range(0, len(x), batch):
                    real = x[i:i + batch].to(model.device).permute(0, 4, 1, 2, 3).to(model.dtype).div(127.5).sub(1.0)
                    with torch.no_grad(), onednn_conv3d(model.device):  # as the training loop encodes
                        lat.append(model.encode(real).float().cpu())
                with atomic_path(out / shard_name(k)) as tmp:  # '.shard-NNNNN.safetensors.*.tmp' until finished
                    save_file({"latents": torch.cat(lat).contiguous(), "frames": x.contiguous()}, str(tmp))
                encoded += len(frames_u8)
            index["shards"].append(entry)
            index["shards"].sort(key=lambda s: s["index"])
            atomic_write_text(out / INDEX, json.dumps(index, indent=1))  # the shard counts only once the index lists it
            written += 1
            log.info("cache %s: shard %d/%d (%d windows)", out, k + 1, n_shards, entry["windows"])
            bar.update(note=f"{entry['windows']} windows")
    index["complete"] = True
    atomic_write_text(out / INDEX, json.dumps(index, indent=1))
    return summary(out, index, encoded=encoded, seconds=time.perf_counter() - t0)


def summary(out: Path, index: dict, *, encoded: int, seconds: float) -> dict:
    total = sum(s["windows"] for s in index["shards"])
    return {"cache": str(out), "complete": index["complete"], "windows": total, "shards": len(index["shards"]),
            "skipped": len(index["skipped"]), "encoded_now": encoded, "seconds": round(seconds, 2),
            "windows_per_s": round(encoded / seconds, 3) if seconds > 0 and encoded else None}


def _fixed_window(path: str, first: int, frames: int, size: int, info: dict) -> np.ndarray:
    """uint8 (frames, size, size, 3): the short side resized to ``size``, a centered square kept."""
    clip = read_window(path, first, frames, info=info)
    if min(clip.shape[1:3]) < size:
        raise LabError(f"{path}: {clip.shape[1]}x{clip.shape[2]} is smaller than the cache's {size}x{size} windows")
    clip = resize_short_side(clip, size)
    h, w = clip.shape[1:3]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(clip[:, top:top + size, left:left + size])


class LatentCache:
    """Windows and latents read back from a cache folder, drawn per (seed, rank, step)."""

    def __init__(self, folder, *, seed: int = 0, rank: int = 0, world: int = 1, device="cpu"):
        self.folder = Path(folder)
        index = read_index(self.folder)
        if index is None:
            raise ConfigError(f"data.cache {self.folder} holds no {INDEX}; build it with python -m lab data encode "
                              f"--teacher NAME --data SPEC --out {self.folder}.")
        if not index["complete"]:
            log.warning("data.cache %s is not complete (an encode run stopped); training on its %d shard(s)",
                        self.folder, len(index["shards"]))
        self.spec = index["spec"]
        rows = [(s["file"], r) for s in index["shards"] for r in range(s["windows"])]
        self.rows = rows[rank::world]  # rank r reads windows r, r + w, ...: disjoint across ranks
        if not self.rows:
            raise NoUsableDataError(f"data.cache {self.folder} has {len(rows)} window(s), none for rank {rank} of "
                                    f"{world}; encode more data.")
        self.seed, self.rank, self.device = seed, rank, torch.device(device)
        self.specs = sorted({p for s in index["shards"] for p, _ in s["sources"]})
        self._files: dict = {}

    @property
    def frames(self) -> int:
        return self.spec["frames"]

    @property
    def size(self) -> int:
        return self.spec["size"]

    def check(self, teacher: str, frames: int, crop: int, where: str = "data") -> None:
        """Refuse a run whose teacher or window shape is not the cache's."""
        if teacher != self.spec["teacher"]:
            raise ConfigError(f"data.cache {self.folder} holds latents of teacher '{self.spec['teacher']}', the run's "
                              f"teacher is '{teacher}'; encode a cache with --teacher {teacher}.")
        if (frames, crop) != (self.frames, self.size):
            raise ConfigError(f"{where}: {frames} frames at {crop}x{crop}, but data.cache {self.folder} holds "
                              f"{self.frames}-frame {self.size}x{self.size} windows; set frames = {self.frames} and "
                              f"crop = {self.size} (a phase may not override them), or encode another cache.")

    def _open(self, name: str):
        if name not in self._files:
            if len(self._files) >= MAX_OPEN_SHARDS:  # thousands of shards would exhaust the file descriptors
                self._files.pop(next(iter(self._files)))
            self._files[name] = safe_open(str(self.folder / name), framework="pt")
        return self._files[name]

    def sample(self, batch: int, frames: int, crop: int, generator=None, *, step: int | None = None):
        """(real (B, 3, T, H, W) in [-1, 1], latents (B, C, t, h, w)) on the cache's device."""
        if (frames, crop) != (self.frames, self.size):
            self.check(self.spec["teacher"], frames, crop)
        if step is None:
            key, step = (1,), int(torch.randint(0, 2**62, (1,), generator=generator))
        else:
            key = (0,)
        rng = np.random.default_rng([self.seed, self.rank, *key, step])
        picks = [self.rows[i] for i in rng.integers(0, len(self.rows), size=batch)]
        real, lat = [], []
        for name, r in picks:
            f = self._open(name)
            real.append(f.get_slice("frames")[r:r + 1])
            lat.append(f.get_slice("latents")[r:r + 1])
        x = torch.cat(real).to(self.device, non_blocking=True).permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)
        return x, torch.cat(lat).to(self.device, non_blocking=True)
