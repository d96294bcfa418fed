"""Still photographs as extra training video: each window is a synthetic camera move over one photo.

Three clips are too few real scenes for a teacher that must generalise, and the package registries
carry few real videos but many real photographs (scikit-image ships natural images in its wheel; scikit-learn's
and matplotlib's wheels a few more, ``registry_photos``).
A window here is ``frames`` views of one photo along a smooth camera path: a start and an end pose
(centre, zoom, small rotation) drawn at random, interpolated linearly, each view resampled
bilinearly with ``affine_grid``/``grid_sample``. The motion is real parallax-free camera motion
(pan, zoom, roll); it teaches texture and motion statistics, not occlusion, which only real video has.

``StillWindows.sample`` has the signature of :meth:`lab.data.clips.ClipWindows.sample`, so a
trainer mixes both (``lab.data.mix.MixedWindows``). Everything runs on the photos' device.
"""

from __future__ import annotations

import json
import math
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lab import paths
from lab.data.clips import resize_short_side
from lab.errors import LabError
from lab.files import atomic_path, atomic_write_bytes, atomic_write_text

# scikit-image's bundled natural photographs (colour ones first; grey ones are used as grey RGB).
# Only names whose files ship inside the wheel: nothing is downloaded.
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "grass", "gravel", "brick", "moon", "coins", "page", "text")


def skimage_photos(names: tuple[str, ...] = SKIMAGE_PHOTOS) -> dict[str, np.ndarray]:
    """{name: uint8 (H, W, 3)} of the photos scikit-image ships (those its installed version has)."""
    try:
        from skimage import data  # deferred: scikit-image is a test extra; a missing one becomes the error below
    except ImportError as exc:
        raise LabError("the still photographs come from scikit-image's data module; pip install scikit-image, "
                       "or pass a .npz of photos (python scripts/gpu/prepare.sh writes one).") from exc
    out = {}
    for name in names:
        try:
            img = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001  (absent in this version, or needs a download: skip it)
            continue
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-8))).clip(0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out[name] = np.ascontiguousarray(img[..., :3])
    if not out:
        raise LabError("scikit-image is installed but none of its bundled photos could be read.")
    return out


#: Natural photographs other wheels on PyPI ship as sample data: name -> (wheel, file inside it, licence). Read from
#: the wheel (the way lab.data.samples takes its clips), never imported.
REGISTRY_PHOTOS = {
    "china": ("scikit-learn==1.5.2", "sklearn/datasets/images/china.jpg",
              "CC-BY 2.0, danielbuechele on Flickr (scikit-learn's sample image)"),
    "flower": ("scikit-learn==1.5.2", "sklearn/datasets/images/flower.jpg",
               "CC-BY 2.0, vultilion on Flickr (scikit-learn's sample image)"),
    "grace_hopper": ("matplotlib==3.9.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                     "public domain, U.S. Navy photograph (matplotlib's sample data)"),
}


def registry_photos(dest: str | Path | None = None) -> dict[str, np.ndarray]:
    """{name: uint8 (H, W, 3)} of REGISTRY_PHOTOS, fetched once into ``dest`` (default data/samples/photos, with
    their licences in LICENSES.json): more real scenes for the stills, from the package index only."""
    from lab.data.samples import download_wheel  # deferred: the clips' fetch code, used only when fetching
    from lab.data.video import read_frames

    dest = Path(dest) if dest is not None else paths.samples_dir() / "photos"
    dest.mkdir(parents=True, exist_ok=True)
    files = {name: dest / Path(member).name for name, (_, member, _) in REGISTRY_PHOTOS.items()}
    for wheel in sorted({w for w, _, _ in REGISTRY_PHOTOS.values()}):
        missing = {n: m for n, (w, m, _) in REGISTRY_PHOTOS.items() if w == wheel and not files[n].is_file()}
        if missing:
            with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(
                    download_wheel(wheel, Path(tmp), "its sample photos", "or leave them out")) as zf:
                for name, member in missing.items():
                    atomic_write_bytes(files[name], zf.read(member))
    atomic_write_text(dest / "LICENSES.json", json.dumps(
        {n: {"file": files[n].name, "source": f"PyPI wheel {w}, {m}", "licence": lic}
         for n, (w, m, lic) in REGISTRY_PHOTOS.items()}, indent=2))
    return {name: read_frames(f, max_frames=1)[0] for name, f in files.items()}


def save_photos(path: str | Path, photos: dict[str, np.ndarray]) -> Path:
    """Write photos as one compressed .npz (a compact file to carry to another machine)."""
    path = Path(path)
    with atomic_path(path, suffix=".part.npz") as tmp:  # numpy adds .npz to a name without it
        np.savez_compressed(tmp, **photos)
    return path


def load_photos(path: str | Path) -> dict[str, np.ndarray]:
    """Read a .npz written by :func:`save_photos` (plain arrays: no pickle is executed)."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"no photo file at {path}; write one with python scripts/gpu/prepare.sh, or leave --stills "
                       f"at 'skimage' to read scikit-image's bundled photos.")
    fix = "write one with lab.data.stills.save_photos (uint8 (H, W, 3) arrays), or pass --stills skimage"
    try:
        with np.load(path, allow_pickle=False) as z:
            photos = {k: z[k] for k in z.files}
    except Exception as exc:  # not a zip of .npy files, pickled object arrays, a file cut short
        raise LabError(f"{path} is not a .npz of plain photo arrays ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'}); {fix}.") from None
    if not photos:
        raise LabError(f"{path} holds no photos; {fix}.")
    for k, v in photos.items():
        if v.dtype != np.uint8 or v.ndim != 3 or v.shape[-1] != 3 or min(v.shape[:2]) < 2:
            raise LabError(f"{path}: '{k}' is a {v.dtype} array of shape {v.shape}, not a uint8 (H, W, 3) photo; "
                           f"{fix}.")
    return photos


class StillWindows:
    """Random camera moves over photos. ``max_shift``: pan over a window, in crop widths; ``max_zoom``:
    the largest zoom ratio between a window's first and last view; ``max_roll``: degrees."""

    def __init__(self, photos: dict[str, np.ndarray], *, short_side: int = 256, device="cpu",
                 max_shift: float = 0.5, max_zoom: float = 1.3, max_roll: float = 6.0):
        if not photos:
            raise LabError("StillWindows needs at least one photo.")
        self.names = list(photos)
        self.device = torch.device(device)
        self.max_shift, self.max_zoom, self.max_roll = max_shift, max_zoom, max_roll
        self.images = []
        for name in self.names:
            # Photos are kept at the clips' scale (the clips' own resize), so texture density matches the video.
            img = resize_short_side(np.ascontiguousarray(photos[name])[None], short_side)[0]
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
            self.images.append(x.div_(127.5).sub_(1.0).to(self.device))

    def summary(self) -> list[dict]:
        return [{"photo": n, "height": int(x.shape[-2]), "width": int(x.shape[-1])}
                for n, x in zip(self.names, self.images)]

    def sample(self, batch: int, frames: int, crop: int, generator: torch.Generator) -> torch.Tensor:
        """(batch, 3, frames, crop, crop) float in [-1, 1] on the photos' device."""
        u = torch.rand(batch, 8, generator=generator)  # all randomness from the CPU generator: reproducible
        out = []
        t = torch.linspace(0, 1, frames).view(frames, 1)
        for i in range(batch):
            img = self.images[int(u[i, 0] * len(self.images)) % len(self.images)]
            h, w = img.shape[-2:]
            # View size (in pixels of the photo) at both ends: crop * zoom, zoom in [1, max_zoom].
            z0 = 1 + (self.max_zoom - 1) * float(u[i, 1])
            z1 = z0 * self.max_zoom ** (2 * float(u[i, 2]) - 1)
            z1 = min(max(z1, 1.0), self.max_zoom)
            zoom = torch.tensor([z0, z1])
            view = crop * zoom.max()
            if view > min(h, w):  # a small photo: shrink the zoom so the view stays inside it
                zoom = zoom * (min(h, w) / float(view))
            roll = math.radians(self.max_roll) * (2 * u[i, 3:5] - 1)
            r = math.radians(self.max_roll)
            half = float(crop * zoom.max() / 2) * (math.cos(r) + math.sin(r))  # room for the rolled view
            cy = _centre(h, half, float(u[i, 5]))
            cx0 = _centre(w, half, float(u[i, 6]))
            cx1 = cx0 + self.max_shift * crop * (2 * float(u[i, 7]) - 1)
            cx1 = min(max(cx1, half), w - half) if w >= 2 * half else cx0
            c = torch.tensor([[cx0, cy], [cx1, cy]])  # (2, 2): x, y at the first and last frame
            pose = lambda a: a[0] + (a[1] - a[0]) * t  # noqa: E731  (frames, k) linear path
            cen, zs, rs = pose(c.view(2, 1, 2)).view(frames, 2), pose(zoom.view(2, 1)), pose(roll.view(2, 1))
            out.append(self._views(img, cen, zs.view(-1), rs.view(-1), crop))
        return torch.stack(out).permute(0, 2, 1, 3, 4).contiguous()  # (B, 3, T, crop, crop)

    def _views(self, img: torch.Tensor, centre: torch.Tensor, zoom: torch.Tensor, roll: torch.Tensor,
               crop: int) -> torch.Tensor:
        """(T, 3, crop, crop): each frame a crop*zoom square view rotated by roll, centred at centre."""
        h, w = img.shape[-2:]
        cos, sin = torch.cos(roll), torch.sin(roll)
        sx, sy = crop * zoom / w, crop * zoom / h  # half-extent of the view in normalised coordinates
        theta = torch.stack([
            torch.stack([cos * sx, -sin * sy * h / w, 2 * centre[:, 0] / w - 1], dim=1),
            torch.stack([sin * sx * w / h, cos * sy, 2 * centre[:, 1] / h - 1], dim=1),
        ], dim=1).to(img.device, img.dtype)  # (T, 2, 3)
        grid = F.affine_grid(theta, (theta.shape[0], 3, crop, crop), align_corners=False)
        return F.grid_sample(img.expand(theta.shape[0], -1, -1, -1), grid, mode="bilinear",
                             padding_mode="reflection", align_corners=False)


def _centre(size: int, half: float, u: float) -> float:
    """A view centre along one axis: uniform where the view fits, the middle where it does not."""
    return half + (size - 2 * half) * u if size >= 2 * half else size / 2
