"""Training windows streamed from a folder of videos: each window is decoded from disk when it is needed.

``ClipWindows`` decodes every clip whole into memory at start; for thousands of files that neither fits
nor starts in time. Here the files are only probed at start (frame count and size, a few ms each); a
``WindowStream`` (a ``torch.utils.data.IterableDataset``) then builds each step's batch in a DataLoader
worker: open the file, seek to the window, decode its frames only (``lab.data.video.read_window``),
crop, resize and flip, and hand a uint8 (B, T, crop, crop, 3) tensor to the trainer.

Determinism: the batch of step ``s`` depends only on (seed, rank, s), never on which worker built it or
on how many workers there are (worker k of n builds steps k, k + n, ...; the DataLoader returns them in
order). A resumed run passes its step and sees the same batches as an uninterrupted one.

Sharding: rank r of world w streams its own files, ``files[r::w]`` of the sorted spec, so ranks never
train on the same video in the same epoch of draws.

Bad data is skipped: a file that cannot be probed, is too short for the window or too small for the
crop is logged once with its path and left out; a file that fails while a window is decoded (cut short)
is remembered as readable up to where it failed, and the window is drawn again. Only when nothing usable
is left does the stream stop, with a NoUsableDataError.
"""

from __future__ import annotations

import copy
import logging
import math
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import count

import numpy as np
import torch
import torch.nn.functional as F

from lab.data.dataset import NoUsableDataError, VideoEntry
from lab.data.video import probe, read_window
from lab.errors import LabError

log = logging.getLogger("lab.data")

#: Draws of one window before the stream gives up (each draw picks a file and a window uniformly; only a
#: spec where nearly every window fails gets here).
MAX_DRAWS = 10_000

_logged: set[str] = set()  # paths already reported (once per process: a worker reports through its batches)


def log_once(path: str, message: str) -> None:
    if path not in _logged:
        _logged.add(path)
        log.warning("data: skipped %s", message)


@dataclass(frozen=True)
class Source:
    """A probed entry: frames ``[start, start + frames)`` of ``path``, ``height`` x ``width`` pixels."""
    path: str
    start: int
    frames: int
    height: int
    width: int
    info: dict

    def name(self) -> str:
        return f"{self.path}[{self.start}:{self.start + self.frames}]"


def probe_sources(entries: list[VideoEntry], threads: int = 4) -> list[Source]:
    """Probe every entry (in threads: PyAV releases the GIL while it opens files); unreadable ones are logged
    once and dropped."""

    def one(e: VideoEntry):
        try:
            info = probe(e.path)
        except LabError as exc:  # VideoReadError and the size limits: skipped, not fatal
            return e, None, str(exc)
        if not info["frames"] or not info["height"] or not info["width"]:
            return e, None, f"{e.path}: no frame count or size in its header (re-encode it as mp4)"
        return e, info, None

    with ThreadPoolExecutor(max(1, min(threads, len(entries)))) as pool:
        probed = list(pool.map(one, entries))
    out = []
    for e, info, error in probed:
        if error:
            log_once(e.path, error)
            continue
        stop = info["frames"] if e.stop is None else min(e.stop, info["frames"])
        if stop <= e.start:
            log_once(e.path, f"{e.path}: the range [{e.start}:{e.stop}] is past its {info['frames']} frames")
            continue
        out.append(Source(e.path, e.start, stop - e.start, info["height"], info["width"], info))
    return out


def shard(entries: list, rank: int, world: int) -> list:
    """Rank ``rank``'s share of ``entries``: every ``world``-th one from ``rank`` (disjoint, and each rank
    gets files from the whole spec, not one folder)."""
    if not 0 <= rank < world:
        raise LabError(f"rank {rank} is outside a world of {world} processes.")
    mine = entries[rank::world]
    if not mine:
        raise NoUsableDataError(f"{len(entries)} video(s) cannot be shared by {world} processes (rank {rank} gets "
                                f"none); add videos or run fewer processes.")
    return mine


def scales(src: Source, short_sides, crop: int) -> list[int]:
    """The short sides ``src`` can be sampled at for a ``crop`` (never upscaled, as in ClipWindows)."""
    native = min(src.height, src.width)
    return sorted({min(s, native) for s in short_sides if min(s, native) >= crop})


class WindowStream(torch.utils.data.IterableDataset):
    """Batches of windows, one per step from ``start_step`` on (``steps`` of them, or without end).

    Each item is ``(step, uint8 (B, T, crop, crop, 3), skipped)``: ``skipped`` lists (path, reason) of files
    found bad while building it, so that the main process logs them once. A stream that runs out of usable
    data yields ``(step, None, [(None, message)])`` instead of raising in the worker (whose traceback would
    bury the one-line error).
    """

    def __init__(self, sources: list[Source], *, batch: int, frames: int, crop: int, short_sides=(256,),
                 seed: int = 0, rank: int = 0, start_step: int = 0, steps: int | None = None):
        super().__init__()
        self.batch, self.frames, self.crop = batch, frames, crop
        self.seed, self.rank, self.start_step, self.steps = seed, rank, start_step, steps
        self.sources, self.scales = [], []
        for s in sources:
            sc = scales(s, short_sides, crop)
            if s.frames < frames:
                log_once(s.path, f"{s.name()}: {s.frames} frames, shorter than the {frames}-frame window")
            elif not sc:
                log_once(s.path, f"{s.name()}: {s.height}x{s.width} is smaller than the {crop}x{crop} crop")
            else:
                self.sources.append(s)
                self.scales.append(sc)
        if not self.sources:
            raise NoUsableDataError(f"none of the {len(sources)} video(s) has {frames} readable frames and a "
                                    f"{crop}x{crop} crop; see the 'skipped' lines above, or ask for fewer frames "
                                    f"or a smaller crop.")
        self.readable: dict[str, int] = {}  # path -> frames readable from its start (set when a read fails)

    def at(self, start_step: int, steps: int | None = None) -> "WindowStream":
        """The same stream over other steps (the files are not checked again)."""
        ds = copy.copy(self)
        ds.start_step, ds.steps, ds.readable = start_step, steps, dict(self.readable)
        return ds

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        end = None if self.steps is None else self.start_step + self.steps
        for step in count(self.start_step + k, n):
            if end is not None and step >= end:
                return
            try:
                batch, skipped = self.build(step)
            except NoUsableDataError as exc:
                yield step, None, [(None, str(exc))]
                return
            yield step, batch, skipped

    def build(self, step: int, key: tuple = (0,)) -> tuple[torch.Tensor, list]:
        """The batch of ``step``: uint8 (B, T, crop, crop, 3) and the files found bad on the way."""
        rng = np.random.default_rng([self.seed, self.rank, *key, step])
        skipped: list = []
        wins = [self._window(rng, skipped) for _ in range(self.batch)]
        return torch.from_numpy(np.stack(wins)), skipped

    def _window(self, rng, skipped: list) -> np.ndarray:
        for _ in range(MAX_DRAWS):
            # One draw of six numbers per try, whatever is known about the files: a worker that has already
            # met a bad file draws the same sequence as one that meets it now, so batches stay deterministic.
            u = rng.random(6)
            i = _pick(len(self.sources), u[0])
            src, sc = self.sources[i], self.scales[i]
            t0 = _pick(src.frames - self.frames + 1, u[1])
            if src.start + t0 + self.frames > self.readable.get(src.path, math.inf):
                self._check_left()
                continue
            side = sc[_pick(len(sc), u[2])]
            native = min(src.height, src.width)
            c = min(round(self.crop * native / side), src.height, src.width)  # the crop, in source pixels
            y0, x0 = _pick(src.height - c + 1, u[3]), _pick(src.width - c + 1, u[4])
            try:
                clip = read_window(src.path, src.start + t0, self.frames, info=src.info)
            except LabError as exc:
                self.readable[src.path] = min(getattr(exc, "readable_until", src.start + t0),
                                              self.readable.get(src.path, math.inf))
                skipped.append((src.path, str(exc)))
                self._check_left()
                continue
            win = clip[:, y0:y0 + c, x0:x0 + c]
            if c != self.crop:  # shrink to the crop (antialiased): the same pixels a resize-then-crop keeps
                # uint8 in, channels-last: torch's fast path (~15x faster than float, within 1 level of it).
                x = torch.from_numpy(np.ascontiguousarray(win)).permute(0, 3, 1, 2)
                x = F.interpolate(x, size=(self.crop, self.crop), mode="bilinear", align_corners=False,
                                  antialias=True)
                win = x.permute(0, 2, 3, 1).numpy()
            return np.ascontiguousarray(win[:, :, ::-1] if u[5] >= 0.5 else win)
        raise NoUsableDataError(f"{MAX_DRAWS} draws found no readable {self.frames}-frame window in "
                                f"{len(self.sources)} video(s); most of them fail to decode (see the 'skipped' lines).")

    def _check_left(self) -> None:
        left = [s for s in self.sources if self.readable.get(s.path, math.inf) - s.start >= self.frames]
        if not left:
            raise NoUsableDataError(f"nothing usable left: all {len(self.sources)} video(s) failed to decode a "
                                    f"{self.frames}-frame window (see the 'skipped' lines above).")


#: Seconds a streamed batch may take to arrive from a worker before the loader raises.
WORKER_TIMEOUT_S = 600


def _worker_context() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _worker_init(_):
    # Workers decode; torch ops in them are small, and N workers x all-core thread pools oversubscribe.
    torch.set_num_threads(1)


class StreamWindows:
    """The trainer's view of a streamed spec: ``sample(batch, frames, crop, generator, step=...)`` like
    ``ClipWindows``, with a DataLoader prefetching the next steps' batches in ``workers`` processes.

    ``sample(..., step=s)`` returns the batch of step ``s`` (the same one after a resume); calls for
    consecutive steps stream, a jump (a resume) or another window shape (a phase's own crop or frames)
    restarts the loader there. Without ``step`` (e.g. the export's latent statistics) a batch is drawn from
    ``generator`` and built in this process.
    """

    def __init__(self, entries: list[VideoEntry], *, short_sides=(256,), seed: int = 0, rank: int = 0,
                 world: int = 1, workers: int = 2, probe_threads: int = 4):
        self.entries = shard(list(entries), rank, world)
        self.sources = probe_sources(self.entries, probe_threads)
        if not self.sources:
            raise NoUsableDataError(f"none of the {len(self.entries)} video(s) of this spec can be read (see the "
                                    f"'skipped' lines above); nothing is left to train on.")
        self.specs = [e.clip_spec() for e in self.entries]  # what a model card lists as training data
        self.short_sides, self.seed, self.rank, self.workers = tuple(short_sides), seed, rank, workers
        self.device = torch.device("cpu")
        self._streams: dict[tuple, WindowStream] = {}
        self._it, self._key, self._next = None, None, None

    def summary(self) -> list[dict]:
        return [{"clip": s.name(), "frames": s.frames, "height": s.height, "width": s.width} for s in self.sources]

    @property
    def nbytes(self) -> int:
        return 0  # nothing is held in memory

    def to(self, device) -> "StreamWindows":
        self.device = torch.device(device)
        return self

    def stream(self, batch: int, frames: int, crop: int, start_step: int = 0, steps: int | None = None):
        key = (batch, frames, crop)
        if key not in self._streams:  # checks (and logs) which files fit this window shape once
            self._streams[key] = WindowStream(self.sources, batch=batch, frames=frames, crop=crop,
                                              short_sides=self.short_sides, seed=self.seed, rank=self.rank)
        return self._streams[key].at(start_step, steps)

    def loader(self, batch: int, frames: int, crop: int, start_step: int = 0, steps: int | None = None):
        """A DataLoader over the steps from ``start_step`` (items: see WindowStream)."""
        ds = self.stream(batch, frames, crop, start_step, steps)
        pin = self.device.type == "cuda"
        if not self.workers:
            return torch.utils.data.DataLoader(ds, batch_size=None, pin_memory=pin)
        # Workers start from a fresh forkserver process, not a fork of this one: a fork taken after the
        # probe threads or torch's thread pools have run can inherit a held lock and hang forever (it did,
        # in a test run). A worker that still stalls is an error after WORKER_TIMEOUT_S, not a silent hang.
        return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=self.workers, pin_memory=pin,
                                           worker_init_fn=_worker_init, prefetch_factor=2,
                                           multiprocessing_context=_worker_context(), timeout=WORKER_TIMEOUT_S)

    def sample_uint8(self, batch: int, frames: int, crop: int, generator=None, *, step: int | None = None):
        """uint8 (B, T, crop, crop, 3) on the CPU (pinned on CUDA machines)."""
        key = (batch, frames, crop)
        if step is None:
            draw = int(torch.randint(0, 2**62, (1,), generator=generator))
            x, skipped = self.stream(*key).build(draw, key=(1,))
            _report(skipped)
            return x
        if self._it is None or self._key != key or self._next != step:
            self.close()
            self._it, self._key = iter(self.loader(*key, start_step=step)), key
        got, x, skipped = next(self._it)
        _report(skipped)
        if got != step:  # the DataLoader keeps worker order; a mismatch would silently change the data order
            raise LabError(f"the data loader returned step {got}'s batch for step {step}.")
        self._next = step + 1
        return x

    def sample(self, batch: int, frames: int, crop: int, generator=None, *, step: int | None = None) -> torch.Tensor:
        """A batch (B, 3, frames, crop, crop), float in [-1, 1], on the device given to ``to``."""
        x = self.sample_uint8(batch, frames, crop, generator, step=step)
        x = x.to(self.device, non_blocking=True)
        return x.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)

    def close(self) -> None:
        """Stop the loader's workers (they are also stopped when the object is garbage collected)."""
        it, self._it, self._next = self._it, None, None
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


def sample_windows(data, batch: int, frames: int, crop: int, generator, step: int | None = None) -> torch.Tensor:
    """``data.sample`` for any window source: a streamed one gets the step that keys its batch, an in-memory
    one (ClipWindows, MixedWindows) draws from ``generator`` as it always has."""
    if isinstance(data, StreamWindows):
        return data.sample(batch, frames, crop, generator, step=step)
    return data.sample(batch, frames, crop, generator)


def _report(skipped: list) -> None:
    for path, reason in skipped:
        if path is None:  # the worker ran out of usable data
            raise NoUsableDataError(reason)
        log_once(path, reason)


def _pick(n: int, u: float) -> int:
    """An index in [0, n) from a uniform draw u in [0, 1)."""
    return min(int(u * n), n - 1)
