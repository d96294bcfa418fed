"""Video IO: read a clip to a tensor that a given VAE can encode, write mp4.

PyAV is the backend (exact frame counts, H.264 output that browsers play). Where it is not
installed (e.g. GPU machines that carry only OpenCV), OpenCV reads and writes instead; ``backend()``
says which is in use. Both are imported where they are used, so ``python -m lab`` never needs them
just to start.

Tensors follow the decoder interface: float in [-1, 1], (N, 3, T, H, W). Frames read from disk
are uint8 (T, H, W, 3).
"""

from __future__ import annotations

import importlib.util
import math
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab.errors import ConfigError, LabError, VideoReadError, VideoShapeError
from lab.files import atomic_path

#: Largest frame the lab decodes (8K UHD, 7680x4320). Decoding allocates a frame before anything can
#: look at it, and the float copies downstream are 12x larger: a 16000x16000 image would take ~9 GB.
MAX_FRAME_PIXELS = 7680 * 4320
#: Largest uint8 clip read_frames returns (frames x H x W x 3 bytes); its float tensor is 4x this.
MAX_DECODED_BYTES = 2 << 30
#: Frame rates write_video accepts (encoders fail on zero, negative or absurd rates).
MAX_FPS = 1000.0


def backend() -> str:
    """'av' (PyAV) when installed, else 'cv2' (OpenCV); LAB_VIDEO_BACKEND=cv2 forces OpenCV."""
    forced = os.environ.get("LAB_VIDEO_BACKEND")
    if forced in ("av", "cv2"):
        if importlib.util.find_spec(forced) is None:
            raise LabError(f"LAB_VIDEO_BACKEND={forced}, but {forced} is not installed; pip install "
                           f"{'av' if forced == 'av' else 'opencv-python-headless'}, or unset LAB_VIDEO_BACKEND.")
        return forced
    for name in ("av", "cv2"):
        if importlib.util.find_spec(name) is not None:
            return name
    raise LabError("no video backend: install PyAV (pip install av) or OpenCV (pip install opencv-python-headless).")


def probe(path: str | os.PathLike) -> dict:
    """Frames, size, fps and duration of a video file, without decoding it all."""
    path = _check_exists(path)
    if backend() == "cv2":
        return _probe_cv2(path)
    import av  # deferred: PyAV may be missing (see backend()), and python -m lab starts without it
    try:
        with _open_av(path) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path} has no video stream.")
            s = container.streams.video[0]
            if not s.width or not s.height:
                _refuse_oversized_av(path)
            fps = float(s.average_rate) if s.average_rate else 0.0
            frames = s.frames or 0
            duration = float(s.duration * s.time_base) if s.duration else (
                float(container.duration / av.time_base) if container.duration else 0.0)
            if not frames and fps and duration:
                frames = int(round(fps * duration))
            return {"frames": frames, "height": s.height, "width": s.width, "fps": fps, "duration_s": duration}
    except av.error.FFmpegError as exc:
        raise VideoReadError(f"{path} is not a readable video ({exc}). Re-encode it as mp4 (H.264).") from exc


def _open_av(path: Path):
    # max_pixels: ffmpeg refuses to decode a larger frame while probing, instead of allocating it.
    import av  # deferred: as in probe (PyAV is optional here)
    try:
        return av.open(str(path), stream_options=[{"max_pixels": str(MAX_FRAME_PIXELS)}])
    except ValueError:
        # A container whose streams appear only while ffmpeg probes it (MPEG program streams, .mpg) takes no
        # per-stream options: open it plainly and refuse oversized frames before anything decodes past the probe.
        container = av.open(str(path))
        for s in container.streams.video:
            if s.width and s.height and s.width * s.height > MAX_FRAME_PIXELS:
                container.close()
                _too_large(path, s.width, s.height)
        return container


def _refuse_oversized_av(path: Path) -> None:
    """The stream's size is unknown after probing: open again with ffmpeg's log captured to learn
    whether the frames exceed MAX_FRAME_PIXELS (ffmpeg says so, with the size) or the file is damaged.
    Only this failure path touches the process-wide log level."""
    import av  # deferred: as in probe (PyAV is optional here)
    import av.logging  # deferred: as in probe (PyAV is optional here)
    old = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs, _open_av(path):
            pass
    except av.error.FFmpegError:
        pass
    finally:
        av.logging.set_level(old)
    for _, _, message in logs:
        if "exceeds specified max pixel count" in message:
            size = message.split("Picture size ")[-1].split(" ")[0].split("x")
            _too_large(path, *(map(int, size) if len(size) == 2 and all(map(str.isdigit, size)) else (0, 0)))
    raise VideoReadError(f"{path} is not a readable video (no frame size found). Re-encode it as mp4 (H.264).")


def _too_large(path: Path, width: int, height: int) -> None:
    got = f"{width}x{height}" if width and height else "larger than that"
    raise VideoReadError(f"{path}: frames of {got} exceed the lab's limit of {MAX_FRAME_PIXELS / 1e6:.1f} "
                         f"megapixels per frame; downscale it first, e.g. ffmpeg -i IN -vf scale=1280:-2 OUT.mp4.")


def _check_decoded_size(path: Path, info: dict, max_frames: int | None, start: int, stride: int) -> None:
    """Refuse, before decoding, a read whose frames or whole clip would not fit in memory."""
    w, h = info["width"], info["height"]
    if w * h > MAX_FRAME_PIXELS:
        _too_large(path, w, h)
    total = info["frames"] if info["frames"] > 0 else None
    frames = -(-max(total - start, 0) // stride) if total else None
    frames = max_frames if frames is None else (frames if max_frames is None else min(frames, max_frames))
    if frames and frames * w * h * 3 > MAX_DECODED_BYTES:
        fit = max(1, MAX_DECODED_BYTES // (w * h * 3))
        raise VideoReadError(f"{path}: {frames} frames of {w}x{h} would take {frames * w * h * 3 / 2**30:.3g} GiB "
                             f"decoded, over the lab's {MAX_DECODED_BYTES / 2**30:.3g} GiB limit; read at most "
                             f"{fit} frames (--frames), or downscale the video first.")


def read_frames(path: str | os.PathLike, max_frames: int | None = None, start: int = 0,
                stride: int = 1) -> np.ndarray:
    """Decode frames ``start, start+stride, ...`` (at most ``max_frames``) as uint8 (T, H, W, 3).
    The size is probed first: frames over MAX_FRAME_PIXELS or a clip over MAX_DECODED_BYTES are
    refused before anything is allocated."""
    path = _check_exists(path)
    if start < 0 or stride < 1:
        raise VideoReadError(f"read_frames: start must be >= 0 and stride >= 1, got {start} and {stride}")
    _check_decoded_size(path, probe(path), max_frames, start, stride)
    if backend() == "cv2":
        frames = _read_cv2(path, max_frames, start, stride)
    else:
        frames = _read_av(path, max_frames, start, stride)
    if not frames:
        raise VideoReadError(f"{path}: no frames decoded (start={start}, stride={stride}); the file is empty "
                             f"or shorter than the requested start.")
    return np.stack(frames)


def _read_av(path: Path, max_frames, start, stride) -> list[np.ndarray]:
    import av  # deferred: as in probe (PyAV is optional here)
    frames = []
    try:
        with _open_av(path) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path} has no video stream.")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i < start or (i - start) % stride:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        if not frames:
            raise VideoReadError(f"{path} is not a readable video ({exc}). Re-encode it as mp4 (H.264).") from exc
        # A truncated file: keep the frames that decoded, as ffmpeg itself would.
    return frames


def read_window(path: str | os.PathLike, start: int, count: int, info: dict | None = None) -> np.ndarray:
    """Frames ``[start, start + count)`` as uint8 (count, H, W, 3), decoding only what the window needs:
    PyAV seeks to the keyframe before ``start`` and decodes from there (a streamed training window costs a
    few frames, not the whole file). ``info`` is the file's ``probe`` (probed again when not given).
    Raises VideoReadError when the window cannot be read whole (a file cut short, or ``start`` past its end),
    so a loader can skip it instead of training on a short window."""
    path = _check_exists(path)
    if start < 0 or count < 1:
        raise VideoReadError(f"read_window: start must be >= 0 and count >= 1, got {start} and {count}")
    info = info or probe(path)
    _check_decoded_size(path, info, count, 0, 1)
    frames = (_read_cv2(path, count, start, 1) if backend() == "cv2" else _read_window_av(path, start, count, info))
    if len(frames) < count:
        exc = VideoReadError(f"{path}: frames {start}..{start + count - 1} asked for, {len(frames)} decoded; the "
                             f"file is shorter than its header says, or cut short.")
        exc.readable_until = start + len(frames)  # where decoding stopped: later windows of the file fail too
        raise exc
    return np.stack(frames)


def _read_window_av(path: Path, start: int, count: int, info: dict) -> list[np.ndarray]:
    import av  # deferred: as in probe (PyAV is optional here)
    frames: list[np.ndarray] = []
    try:
        with _open_av(path) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path} has no video stream.")
            stream = container.streams.video[0]
            rate, base = stream.average_rate, stream.time_base
            first = stream.start_time or 0
            if start and rate and base:
                # Seek by timestamp to the keyframe at or before the window, then count frames by their pts.
                container.seek(first + int(start / (rate * base)), backward=True, any_frame=False, stream=stream)
            index = None
            for frame in container.decode(stream):
                if frame.pts is not None and rate and base:
                    index = round(float((frame.pts - first) * base * rate))
                else:  # no timestamps to count by: count decoded frames (only exact when nothing was skipped)
                    index = 0 if index is None else index + 1
                if index < start:
                    continue
                if not frames and index > start:
                    # The seek landed past the window (a stream without usable keyframe timestamps):
                    # read it from the beginning instead.
                    return _read_av(path, count, start, 1)
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= count:
                    break
    except av.error.FFmpegError as exc:
        if not frames:
            raise VideoReadError(f"{path} is not a readable video ({exc}). Re-encode it as mp4 (H.264).") from exc
    return frames


def _open_cv2(path: Path):
    import cv2  # deferred: OpenCV is the fallback backend, not a dependency
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"{path} is not a readable video (OpenCV could not open it). Re-encode it as mp4 (H.264).")
    return cv2, cap


def _read_cv2(path: Path, max_frames, start, stride) -> list[np.ndarray]:
    cv2, cap = _open_cv2(path)
    frames = []
    try:
        i = 0
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = cap.read()  # decode every frame: seeking by index is not exact in all containers
            if not ok:
                break
            if i >= start and (i - start) % stride == 0:
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            i += 1
    finally:
        cap.release()
    if not frames and start == 0:
        raise VideoReadError(f"{path} is not a readable video (OpenCV decoded no frame). Re-encode it as mp4 (H.264).")
    return frames


def _probe_cv2(path: Path) -> dict:
    cv2, cap = _open_cv2(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # images report a huge negative count
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if not w or not h:
        raise VideoReadError(f"{path} has no video stream.")
    return {"frames": frames, "height": h, "width": w, "fps": fps, "duration_s": frames / fps if fps else 0.0}


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (1, 3, T, H, W) in [-1, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoShapeError(f"expected frames as (T, H, W, 3), got {frames.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return x.permute(3, 0, 1, 2).unsqueeze(0)


def to_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) or (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    if video.ndim == 5:
        if video.shape[0] != 1:
            raise VideoShapeError(f"to_frames takes one video, got a batch of {video.shape[0]}")
        video = video[0]
    if video.ndim != 4 or video.shape[0] != 3:
        raise VideoShapeError(f"expected a video as (3, T, H, W), got {tuple(video.shape)}")
    x = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def fit_clip(video: torch.Tensor, *, frames: int | None = None, size: tuple[int, int] | None = None,
             frame_multiple: int = 4, spatial_multiple: int = 8) -> torch.Tensor:
    """Make a clip encodable: keep ``1 + frame_multiple * k`` frames (at most ``frames``), resize the
    short side and center-crop to ``size`` (H, W), or, without ``size``, crop down to multiples of
    ``spatial_multiple``. Resizing uses antialiased bilinear filtering."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise VideoShapeError(f"fit_clip takes (N, 3, T, H, W), got {tuple(video.shape)}")
    n, _, t, h, w = video.shape
    limit = t if frames is None else min(frames, t)
    keep = 1 + (limit - 1) // frame_multiple * frame_multiple
    if frames is not None and frames > t:
        # Say so rather than silently return fewer frames than asked for.
        raise VideoShapeError(f"the clip has {t} frames, {frames} were asked for; ask for at most {keep}.")
    video = video[:, :, :keep]
    if size is None:
        th, tw = h // spatial_multiple * spatial_multiple, w // spatial_multiple * spatial_multiple
        if th < spatial_multiple or tw < spatial_multiple:
            raise VideoShapeError(f"a {h}x{w} clip is smaller than the VAE's {spatial_multiple}-pixel grid.")
        return _center_crop(video, th, tw)
    th, tw = size
    if th % spatial_multiple or tw % spatial_multiple or th <= 0 or tw <= 0:
        raise VideoShapeError(f"size {th}x{tw} is not a positive multiple of {spatial_multiple} in both axes; "
                              f"use e.g. {max(spatial_multiple, th // spatial_multiple * spatial_multiple)}x"
                              f"{max(spatial_multiple, tw // spatial_multiple * spatial_multiple)}.")
    scale = max(th / h, tw / w)
    if abs(scale - 1.0) > 1e-6:
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        flat = video.permute(0, 2, 1, 3, 4).reshape(n * keep, 3, h, w)
        flat = F.interpolate(flat, size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1)
        video = flat.reshape(n, keep, 3, nh, nw).permute(0, 2, 1, 3, 4)
    return _center_crop(video, th, tw).clamp(-1, 1).contiguous()


def _center_crop(video: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    h, w = video.shape[-2:]
    top, left = (h - th) // 2, (w - tw) // 2
    return video[..., top:top + th, left:left + tw]


def load_clip(path: str | os.PathLike, *, frames: int, size: tuple[int, int] | None = None, start: int = 0,
              stride: int = 1, frame_multiple: int = 4, spatial_multiple: int = 8) -> torch.Tensor:
    """Read a clip and fit it for a VAE in one call: (1, 3, T, H, W) in [-1, 1]."""
    raw = read_frames(path, max_frames=frames, start=start, stride=stride)
    return fit_clip(to_tensor(raw), frames=min(frames, raw.shape[0]), size=size,
                    frame_multiple=frame_multiple, spatial_multiple=spatial_multiple)


def write_video(path: str | os.PathLike, video, fps: float = 24.0, crf: int = 18) -> Path:
    """Write (1, 3, T, H, W) in [-1, 1] or uint8 (T, H, W, 3) as H.264 mp4 (yuv420p, so browsers
    play it). Odd sizes are padded by one pixel, as yuv420p needs even sizes. Written to a
    temporary name and renamed, so a reader never sees half a file."""
    frames = to_frames(video) if torch.is_tensor(video) else np.asarray(video)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoShapeError(f"write_video takes uint8 (T, H, W, 3) frames or a video tensor, got "
                              f"{frames.dtype} {frames.shape}")
    fps = check_fps(fps)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; write the video to a file in it, e.g. {path / 'video.mp4'}.")
    with atomic_path(path, suffix=".tmp.mp4") as tmp:  # the encoders pick the container by the extension
        (_write_cv2 if backend() == "cv2" else _write_av)(tmp, frames, fps, crf)
    return path


def check_fps(fps) -> float:
    """A frame rate the encoders take: finite, > 0 and at most MAX_FPS (0 would silently become 24)."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and 0 < value <= MAX_FPS):
        raise ConfigError(f"fps must be a number in (0, {MAX_FPS:g}], got {fps!r}; e.g. 16 or 24.")
    return value


def _write_av(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    import av  # deferred: as in probe (PyAV is optional here)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_cv2(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    # OpenCV's pip wheels carry no H.264 encoder: mp4v plays in players, not in every browser (and
    # takes no crf).
    import cv2  # deferred: as in _open_cv2 (OpenCV is optional)
    h, w = frames.shape[1:3]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not out.isOpened():
        raise VideoReadError(f"OpenCV cannot write {path}; install PyAV (pip install av) to write H.264 mp4.")
    try:
        for f in frames:
            out.write(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR))
    finally:
        out.release()


def side_by_side(*videos: torch.Tensor) -> torch.Tensor:
    """Concatenate videos of the same shape along width (e.g. real | teacher | student)."""
    frames = min(v.shape[2] for v in videos)
    return torch.cat([v[:, :, :frames].float().cpu() for v in videos], dim=-1)


def _check_exists(path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise VideoReadError(f"video file not found: {p}. Fetch the sample clips with "
                             f"python -m lab data fetch, or pass the path to an mp4.")
    return p
