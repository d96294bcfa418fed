"""VMAF through the ffmpeg binary that imageio-ffmpeg ships (built with libvmaf, model v0.6.1).

Both videos are written losslessly as raw 8-bit RGB to a temporary folder (the only rounding is the
[-1, 1] -> [0, 255] quantisation every video file has), ffmpeg scales both to VIEWING_HEIGHT lines
with bicubic interpolation and converts them to yuv444p with the same filters, and libvmaf's JSON
log gives the pooled mean. The accumulator appends chunks to the raw files and scores at
``compute()``, so streaming equals the whole-clip call exactly.

Why the upscale: VMAF's default model (v0.6.1) was fitted to opinion scores of 1080p video on a 1080p
display seen from three screen heights, and its guidance for other resolutions is to upsample the
videos to 1080p (bicubic) before scoring, i.e. score what a viewer sees full screen. Scored at its
native 64x64-176x144, a clip is far outside what the model was fitted to and its VMAF is noise (measured
on the main job: the teacher lowest of all, an untrained student above the distilled one). Scores
are therefore always of both videos at 1080 lines (a 176x144 clip: 1320x1080), in every place the lab
reports VMAF (``lab eval``, ``lab table``, the main job, validation during distillation), and they
stay comparable across clip sizes. Decodes as far from the source as the mini teachers' (PSNR below
~20 dB) score 0 at that viewing size: VMAF then cannot rank them (``vmaf_caveat`` says so), PSNR and
SSIM do. The cost: about a second per 5-10 frames.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from lab.errors import LabError
from lab.eval.metrics import check_pair

#: Lines both videos are scaled to before scoring: what the v0.6.1 model was fitted to (see the module doc).
VIEWING_HEIGHT = 1080
#: How the lab's VMAF is computed, in the words tables and reports print beside the scores.
METHOD = (f"VMAF (model v0.6.1, 0-100, higher is better) of both videos upscaled to {VIEWING_HEIGHT} lines "
          f"(bicubic), the viewing size the model was fitted to")
#: Below this best score, VMAF only says every decode is far from its reference: it cannot rank them.
RANKS_FROM = 20.0


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg  # deferred: a missing imageio-ffmpeg becomes the error below
    except ImportError as exc:
        raise LabError("VMAF needs the ffmpeg binary of imageio-ffmpeg: pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def _rgb_bytes(video: torch.Tensor) -> bytes:
    # (N, 3, T, H, W) in [-1, 1] -> uint8 frames (N*T, H, W, 3), clips of the batch one after another.
    x = ((video.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).contiguous().cpu().numpy().tobytes()


class VMAF:
    """Feed (N, 3, T, H, W) chunks in time order; ``compute()`` runs ffmpeg once on everything."""

    def __init__(self, fps: float = 24.0, threads: int = 2, height: int = VIEWING_HEIGHT):
        self.fps, self.threads, self.height = fps, threads, height
        self._dir = Path(tempfile.mkdtemp(prefix="lab_vmaf_"))
        self._dist, self._ref = self._dir / "dist.rgb", self._dir / "ref.rgb"
        self._size: tuple[int, int] | None = None
        self._batch: int | None = None
        self.frames = 0

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "VMAF":
        """``x`` is the decode (distorted), ``y`` the reference."""
        check_pair(x, y, "vmaf")
        size = (x.shape[3], x.shape[4])
        if self._size is not None and (size != self._size or x.shape[0] != self._batch):
            raise ValueError(f"vmaf: chunk {tuple(x.shape)} does not continue the clip fed so far "
                             f"({self._batch} clips of {self._size[0]}x{self._size[1]})")
        self._size, self._batch = size, x.shape[0]
        if x.shape[0] != 1:
            # Streaming a batch would interleave clips in the raw files; score one clip per accumulator.
            raise ValueError(f"vmaf scores one clip at a time (N=1), got N={x.shape[0]}; call it per clip")
        with open(self._dist, "ab") as f:
            f.write(_rgb_bytes(x))
        with open(self._ref, "ab") as f:
            f.write(_rgb_bytes(y))
        self.frames += x.shape[2]
        return self

    def compute(self) -> float:
        if not self.frames:
            raise ValueError("vmaf: nothing was fed to the accumulator")
        h, w = self._size
        log = self._dir / "vmaf.json"
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{self.fps:g}"]
        fit = f"scale=-2:{self.height}:flags=bicubic,format=yuv444p"  # -2: the width that keeps the aspect, even
        graph = (f"[0:v]{fit}[d];[1:v]{fit}[r];"
                 f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads={self.threads}")
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", *raw, "-i", str(self._dist),
               *raw, "-i", str(self._ref), "-lavfi", graph, "-f", "null", "-"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode or not log.exists():
            raise LabError(f"vmaf: ffmpeg failed ({proc.returncode}): {proc.stderr.strip()[-600:]}\n"
                           f"The imageio-ffmpeg binary must be built with libvmaf "
                           f"(check: {ffmpeg_exe()} -filters | grep libvmaf).")
        data = json.loads(log.read_text())
        return float(data["pooled_metrics"]["vmaf"]["mean"])

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __del__(self):
        self.close()


def vmaf_caveat(scores) -> str | None:
    """What a reader must know about VMAF scores against the real clip (None values are skipped), or None: when the best is
    below RANKS_FROM, every decode is far from its reference at the viewing size and VMAF cannot rank them."""
    scores = [s for s in scores if s is not None]
    if not scores or max(scores) >= RANKS_FROM:
        return None
    return (f"VMAF against the real clip is at most {max(scores):.1f} here: at the 1080-line viewing size the model "
            f"(v0.6.1) sees every decode as far from the clip (it clips at 0), so it cannot rank them; PSNR and SSIM "
            f"do.")


def vmaf_note(scores) -> str:
    """The line printed beside VMAF scores (against the real clip): how they were computed and, when they cannot
    rank the decoders, why."""
    caveat = vmaf_caveat(scores)
    return f"{METHOD}." + (f" {caveat}" if caveat else "")


def vmaf(x: torch.Tensor, y: torch.Tensor, fps: float = 24.0) -> float:
    """VMAF (v0.6.1, 0-100, higher is better) of decode ``x`` against reference ``y``, one clip (N=1), both
    upscaled to VIEWING_HEIGHT lines as the model expects (see the module doc)."""
    acc = VMAF(fps=fps)
    try:
        return acc.update(x, y).compute()
    finally:
        acc.close()
