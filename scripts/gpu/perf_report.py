"""The perf phase's results page, drafted from the files it returned (issue 29): every figure on it comes from
the JSON, so a session with a few device minutes commits correct numbers in seconds and writes only what
they mean.

    python scripts/gpu/perf_report.py OUT_DIR [--write docs/results/perf-h100-2026-12-06.md]
        [--raw perf-h100-2026-12-06/] [--command "bash scripts/gpu/run.sh --phases env,perf"]

OUT_DIR holds what ``bash scripts/gpu/run.sh --phases env,perf`` wrote: ``perf-bench.json`` (Wan teacher and
student rows), ``perf-bench-ltx.json``, optionally ``perf-bench-families.json`` (Wan 2.2, LTX-2)
and ``perf-compile.json``,
``profile-{student,ltx,teacher}.json`` (scripts/gpu/perf.py) and ``run.log``. Missing files (a phase cut by
its timeout) are named on the page, never guessed.

The page:
- the targets of issue 29 (../shared/docs/TARGETS.md), each with the row that decides it and met / not met:
  the Wan student's fastest runtime whose output stays within tolerance of its eager self (PSNR >= 50 dB)
  against 400 fps (the lab's aim: 850, TAEW2.1's speed) and its decode peak against 1.5 GiB; the LTX student
  against 3,000 fps; the unmodified teachers' exact path (a runtime without sub-pixel convs) against 2x
  diffusers eager (aim 2.5x) with max abs error <= 5e-2 and PSNR >= 50 dB against eager in the same dtype;
- each bench as a table, every runtime's ratio to its own eager decoder measured in the same process;
- each profiled decoder's kernel time, GPU-busy share and launch count, and its top kernels and ops: the
  profile that explains each figure (per-stage timings where the profiler saw no kernels, as on a CPU);
- whether each decoder's plain ``@fused`` may become the decoding commands' default on CUDA (within tolerance and
  at least ``DEFAULT_MIN_GAIN`` faster than its eager self), and which family plug-in's ``default_on`` to edit;
- the Triton kernels' status and each phase's exit code and seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

GIB = 2**30
# Issue 29's targets on one H100 (480x832x81, bf16), and the lab's aims past every peer (TARGETS.md).
STUDENT_FPS, STUDENT_FPS_AIM, STUDENT_PEAK_GIB = 400.0, 850.0, 1.5
LTX_STUDENT_FPS = 3000.0
EXACT_SPEEDUP, EXACT_SPEEDUP_AIM, EXACT_MAX_ERR, EXACT_PSNR = 2.0, 2.5, 5e-2, 50.0
#: a runtime's output is "within tolerance" of its eager decoder from this PSNR (dB) on
WITHIN_PSNR = 50.0

#: ``@fused`` becomes a default (lab.runtime.fused: a family's ``default_on``) from this gain over eager on, so
#: that run-to-run noise does not decide it
DEFAULT_MIN_GAIN = 1.05
#: where each decoder's family declares where its fused runtime is the default (by the name's prefix, longest first)
FAMILY_PLUGINS = (("wan2.2", "lab/families/wan/v22/fused.py"), ("wan", "lab/families/wan/fused.py"),
                  ("ltx-2", "lab/families/ltx2/fused.py"), ("ltx", "lab/families/ltx/fused.py"))

BENCH_FILES = ("perf-bench.json", "perf-bench-ltx.json", "perf-bench-families.json", "perf-compile.json")
PROFILE_FILES = ("profile-student.json", "profile-teacher.json", "profile-ltx.json")


@dataclass
class Row:
    """One bench row with its eager decoder's row from the same file (None for an eager row)."""
    name: str
    base: str
    runtime: str | None
    data: dict
    eager: dict | None

    @property
    def failed(self) -> bool:
        """The bench could not run it (``lab bench`` wrote its error instead of timings)."""
        return "error" in self.data

    @property
    def fps(self) -> float:
        return float(self.data["fps"])

    @property
    def vs_eager(self) -> float | None:
        return None if self.eager is None else float(self.eager["seconds"]) / float(self.data["seconds"])

    @property
    def psnr(self) -> float | None:
        v = self.data.get("psnr")
        return None if v is None else float(v)  # "inf" (identical) reads back as inf

    @property
    def max_err(self) -> float | None:
        v = self.data.get("max_abs_err")
        return None if v is None else float(v)

    @property
    def mem_gib(self) -> float | None:
        v = self.data.get("decode_mem_bytes")
        return None if v is None else v / GIB

    def within_tolerance(self) -> bool:
        """Eager itself, or a runtime whose output is within ``WITHIN_PSNR`` of eager's (a row that ran)."""
        return not self.failed and (self.runtime is None or (self.psnr is not None and self.psnr >= WITHIN_PSNR))


def split(name: str) -> tuple[str, str | None]:
    base, _, runtime = name.partition("@")
    return base, runtime or None


def bench_rows(result: dict) -> list[Row]:
    by_name = {r["decoder"]: r for r in result.get("decoders", []) if "error" not in r}
    rows = []
    for r in result.get("decoders", []):
        base, runtime = split(r["decoder"])
        rows.append(Row(r["decoder"], base, runtime, r, None if runtime is None else by_name.get(base)))
    return rows


def is_student(base: str) -> bool:
    return base.endswith("-flash") or "flash" in Path(base).name


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"perf_report: {path} is not JSON ({exc}); was the phase cut while writing it?")


# ----- formatting -----------------------------------------------------------------------------------------
def f_s(v) -> str:
    return "" if v is None else (f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.3f} s")


def f_x(v) -> str:
    return "" if v is None else f"{v:.2f}x"


def f_db(v) -> str:
    return "" if v is None else ("identical" if math.isinf(v) else f"{v:.1f} dB")


def f_err(v) -> str:
    return "" if v is None else ("0" if v == 0 else f"{v:.2g}")


def f_gib(v) -> str:
    return "" if v is None else f"{v:.2f} GiB"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "not met")


# ----- the targets --------------------------------------------------------------------------------------------
def fastest(rows: list[Row]) -> Row | None:
    ok = [r for r in rows if r.within_tolerance()]
    return max(ok, key=lambda r: r.fps) if ok else None


def exact_path(rows: list[Row]) -> Row | None:
    """The fastest runtime of an unmodified teacher that is an exact path: no sub-pixel convs (another
    rounding), max abs error and PSNR against eager within the target's bounds."""
    ok = [r for r in rows if r.runtime and not r.failed and "subpixel" not in r.runtime and r.max_err is not None
          and r.max_err <= EXACT_MAX_ERR and (r.psnr or 0) >= EXACT_PSNR]
    return max(ok, key=lambda r: r.vs_eager or 0) if ok else None


def target_rows(benches: dict[str, list[Row]]) -> list[list[str]]:
    out = []
    wan = benches.get("perf-bench.json", [])
    ltx = benches.get("perf-bench-ltx.json", [])
    student = [r for r in wan if is_student(r.base)]
    best = fastest(student)
    eager = next((r for r in student if r.runtime is None and not r.failed), None)
    if best is None:
        out.append(["Wan student >= 400 fps (aim 850)", "no student rows (perf-bench.json missing or failed)",
                    met(None)])
    else:
        ratio = f", {f_x(best.vs_eager)} its eager {eager.fps:.0f} fps" if eager is not None and best.eager else ""
        out.append([f"Wan student >= {STUDENT_FPS:.0f} fps (aim {STUDENT_FPS_AIM:.0f})",
                    f"{best.fps:.0f} fps, `{best.name}`{ratio}",
                    met(best.fps >= STUDENT_FPS) + (" (aim met)" if best.fps >= STUDENT_FPS_AIM else "")])
        mem = best.mem_gib
        lean = [r for r in student if r.within_tolerance() and r.mem_gib is not None and r.mem_gib <= STUDENT_PEAK_GIB]
        alt = max(lean, key=lambda r: r.fps) if lean else None
        extra = f"; within it: `{alt.name}` at {alt.fps:.0f} fps" if alt is not None and alt is not best else ""
        out.append([f"Wan student <= {STUDENT_PEAK_GIB} GiB decode peak",
                    f"{f_gib(mem) or 'not measured'} (`{best.name}`){extra}",
                    met(None if mem is None else mem <= STUDENT_PEAK_GIB)])
    lbest = fastest([r for r in ltx if is_student(r.base)])
    out.append([f"LTX student >= {LTX_STUDENT_FPS:.0f} fps",
                "no LTX student rows" if lbest is None else f"{lbest.fps:.0f} fps, `{lbest.name}`"
                + (f", {f_x(lbest.vs_eager)} its eager" if lbest.eager else ""),
                met(None if lbest is None else lbest.fps >= LTX_STUDENT_FPS)])
    for label, rows in (("Wan teacher", wan), ("LTX teacher", ltx)):
        teacher = [r for r in rows if not is_student(r.base)]
        if not teacher:
            continue
        exact = exact_path(teacher)
        want = f"{label}: exact path >= {EXACT_SPEEDUP:g}x diffusers eager (aim {EXACT_SPEEDUP_AIM:g}x), " \
               f"max abs err <= {EXACT_MAX_ERR:g}, PSNR >= {EXACT_PSNR:g} dB"
        if exact is None:
            tried = ", ".join(f"`{r.name}` failed" if r.failed else
                              f"`{r.name}` {f_x(r.vs_eager)} (err {f_err(r.max_err)}, {f_db(r.psnr)})"
                              for r in teacher if r.runtime)
            out.append([want, f"no runtime within the error bounds: {tried or 'none run'}", met(False if tried else None)])
        else:
            out.append([want, f"{f_x(exact.vs_eager)} `{exact.name}` (err {f_err(exact.max_err)}, {f_db(exact.psnr)})",
                        met(exact.vs_eager >= EXACT_SPEEDUP)
                        + (" (aim met)" if exact.vs_eager >= EXACT_SPEEDUP_AIM else "")])
    return out


def default_rows(benches: dict[str, list[Row]]) -> list[list[str]]:
    """One row per decoder with a plain ``@fused`` row: its gain and PSNR against its eager self, and whether its
    family may list "cuda" in ``default_on``."""
    out = []
    for rows in benches.values():
        for r in rows:
            if r.runtime != "fused" or r.eager is None:
                continue
            plugin = next((f for prefix, f in FAMILY_PLUGINS if Path(r.base).name.startswith(prefix)), "its family's")
            if r.failed:
                verdict = "no: it failed"
            elif not r.within_tolerance():
                verdict = f"no: {f_db(r.psnr)} < {WITHIN_PSNR:g} dB"
            elif r.vs_eager < DEFAULT_MIN_GAIN:
                verdict = f"no: {f_x(r.vs_eager)} < {DEFAULT_MIN_GAIN:g}x"
            else:
                verdict = f'yes: add "cuda" to `default_on` in {plugin}'
            out.append([f"`{r.name}`", "" if r.failed else f_x(r.vs_eager), "" if r.failed else f_db(r.psnr),
                        verdict])
    return out


# ----- the sections ---------------------------------------------------------------------------------------------
def bench_section(name: str, result: dict) -> list[str]:
    rows = bench_rows(result)
    lines = [f"### {name}", "",
             f"{result.get('dtype')}, {result.get('frames')} frames at {result['size'][0]}x{result['size'][1]}, "
             f"median of {result.get('repeats')} after {result.get('warmup')} warm-up; `vs eager` is the same "
             f"decoder's eager median over this row's (where the file has it), `vs row 1` the first row's, `err` "
             f"and `PSNR` the output against eager's on the same latents.", ""]
    body = []
    for r in rows:
        d = r.data
        if r.failed:
            body.append([f"`{r.name}`", "", "", "", "", "", "", "", f"failed: {d['error'][:160]}"])
            continue
        body.append([f"`{r.name}`", f_s(d.get("seconds")), f"{r.fps:.1f}",
                     "1.00x" if r.runtime is None else f_x(r.vs_eager), f_x(d.get("speedup")),
                     f_gib(r.mem_gib), f_err(r.max_err), f_db(r.psnr), d.get("note", "")])
    lines += table(["decoder", "s", "fps", "vs eager", "vs row 1", "decode mem", "err", "PSNR", "note"], body)
    return lines + [""]


def profile_section(name: str, result: dict, top: int = 5) -> list[str]:
    lines = [f"### {name}", ""]
    body = []
    for r in result.get("decoders", []):
        if "error" in r:
            body.append([f"`{r['decoder']}`", "failed: " + r["error"].splitlines()[0][:200], "", "", "", ""])
            continue
        latent_frames = r.get("latents_shape", [0, 0, 1])[2] or 1
        busy = r.get("gpu_busy_share")
        body.append([f"`{r['decoder']}`", f_s(r.get("wall_s")), f_s(r.get("kernel_s")) if r.get("kernels") else "",
                     f"{busy:.0%}" if r.get("kernels") else "", f"{r.get('kernels', 0):,}",
                     f"{r.get('kernels', 0) / latent_frames:.0f}" if r.get("kernels") else ""])
    lines += table(["decoder", "wall", "kernel time", "GPU busy", "kernel launches", "per latent frame"], body)
    for r in result.get("decoders", []):
        if "error" in r:
            continue
        lines += ["", f"`{r['decoder']}`:"]
        if r.get("kernels"):
            total = r.get("kernel_s") or 1.0
            for k in r.get("top_kernels", [])[:top]:
                lines.append(f"- {k['device_s'] * 1e3:.2f} ms ({k['device_s'] / total:.0%}), {k['calls']} calls: "
                             f"`{k['name'][:110]}`")
        elif r.get("stage_timings"):
            stages = sorted(r["stage_timings"], key=lambda s: -s.get("seconds", 0))[:top]
            lines.append("- no device kernels recorded; stages by time: " + ", ".join(
                f"{s['stage']} {f_s(s['seconds'])}" for s in stages))
        ops = r.get("top_ops", [])[:top]
        if ops:
            by = "self device time" if "device" in r.get("top_ops_by", "") or "cuda" in r.get("top_ops_by", "") \
                else "self CPU time"
            lines.append(f"- top ops by {by}: " + "; ".join(
                f"`{o['op']}` {o['self_s'] * 1e3:.2f} ms x{o['calls']}" for o in ops))
    return lines + [""]


def phases(log: str) -> list[list[str]]:
    return [[name, rc, f"{s} s"] for name, rc, s in re.findall(r"^=== phase (\S+): rc=(\d+) \((\d+) s\)", log, re.M)]


def card(profiles: dict[str, dict], log: str) -> str:
    for p in profiles.values():
        if p and p.get("device"):
            return p["device"]
    m = re.search(r"^gpu (.+?) \d+ MiB$", log, re.M)
    return m.group(1) if m else "unknown device"


def render(folder: Path, raw: str | None = None, command: str | None = None) -> str:
    benches_json = {n: _load(folder, n) for n in BENCH_FILES}
    profiles = {n: _load(folder, n) for n in PROFILE_FILES}
    log = (folder / "run.log").read_text() if (folder / "run.log").is_file() else ""
    if not any(benches_json.values()) and not any(profiles.values()):
        raise SystemExit(f"perf_report: {folder} has none of {', '.join(BENCH_FILES + PROFILE_FILES)}; pass the "
                         f"folder the perf phase wrote ($OUT of scripts/gpu/run.sh --phases env,perf)")
    benches = {n: bench_rows(b) for n, b in benches_json.items() if b}
    first = next(p for p in list(profiles.values()) + list(benches_json.values()) if p)
    torch_v = next((p.get("torch") for p in profiles.values() if p and p.get("torch")), None)
    date = next((p.get("date") for p in profiles.values() if p and p.get("date")), None)
    lines = [f"# The fused runtime on {card(profiles, log)}" + (f", {date[:10]}" if date else ""), "",
             "Written by `python scripts/gpu/perf_report.py` from the perf phase's files"
             + (f" ([{raw}]({raw}))" if raw else "") + f". {first.get('dtype')}, {first.get('frames')} frames at "
             f"{first['size'][0]}x{first['size'][1]}, batch 1, random weights (speed does not depend on them)"
             + (f", torch {torch_v}" if torch_v else "") + ".", ""]
    if command:
        lines += ["```", command, "```", ""]
    missing = [n for n in BENCH_FILES[:2] + PROFILE_FILES if not (folder / n).is_file()]
    if missing:
        lines += [f"Not returned (their phase failed or was cut): {', '.join(missing)}.", ""]
    lines += ["## Targets (issue 29, ../shared/docs/TARGETS.md: one H100)", ""]
    lines += table(["target", "measured", ""], target_rows(benches)) + [""]
    defaults = default_rows(benches)
    if defaults:
        lines += ["## The decoding commands' default on CUDA", "",
                  f"`lab decode` and `lab eval` run a plain name `@fused` where its family lists the device in "
                  f"`default_on` (lab.runtime.fused). A decoder qualifies on this card when its `@fused` row is "
                  f"within {WITHIN_PSNR:g} dB of eager and at least {DEFAULT_MIN_GAIN:g}x faster; a family "
                  f"qualifies when all its decoders here do.", ""]
        lines += table(["decoder", "vs eager", "PSNR", "CUDA default"], defaults) + [""]
    lines += ["## Benches", ""]
    for n, b in benches_json.items():
        if b:
            lines += bench_section(n, b)
    lines += ["## Kernel profiles", "",
              "One decode under torch.profiler after the timed ones: `kernel time` is the summed device time of "
              "its kernels, `GPU busy` their union over the decode's wall time.", ""]
    for n, p in profiles.items():
        if p:
            lines += profile_section(n, p)
    triton = {}
    for p in profiles.values():
        triton.update((p or {}).get("triton") or {})
    lines += ["## Triton kernels", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(triton.items())] or \
        ["- none ran (no CUDA, or Triton not importable): every fused op ran its reference"]
    if log:
        lines += ["", "## Phases", ""] + table(["phase", "rc", "time"], phases(log))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="the perf phase's $OUT (perf-bench*.json, profile-*.json, run.log)")
    p.add_argument("--write", help="write the page here (refuses an existing file) instead of printing it")
    p.add_argument("--raw", help="relative link to the raw files, as committed next to the page")
    p.add_argument("--command", help="the device command that made the files, quoted on the page")
    args = p.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"perf_report: {folder} is not a folder; pass the perf phase's $OUT", file=sys.stderr)
        return 2
    page = render(folder, args.raw, args.command)
    if args.write:
        dest = Path(args.write)
        if dest.exists():
            print(f"perf_report: {dest} exists; write to a new name (a results page is never overwritten)",
                  file=sys.stderr)
            return 2
        dest.write_text(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
