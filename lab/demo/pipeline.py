"""The main job, step by step: analyze -> prune (Flash-VAED widths; independence vs magnitude and vs
RANDOM_SEEDS random selections at the same width) -> operator swap -> short distillation -> eval on a held-out clip -> bench -> profile
-> report. Each step logs on stderr; ``run_demo`` returns the results dict that results.json holds.

The demo writes only into its own --out folder: a new or empty one, or an earlier demo's (marked by
``lab_demo.json``), whose outputs it replaces file by file (other files in it are kept); any other folder
is refused before the first step unless ``overwrite``. One demo at a time writes a folder (``lab.runs.lock``)."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import time
from pathlib import Path

import torch

from lab.analysis import analyze, calibration_latents
from lab.analysis.figures import explained_variance_figure, independence_figure
from lab.data.video import load_clip, probe, side_by_side, write_video
from lab.demo.distill_step import distill_student
from lab.demo.report import write_report
from lab.demo.results import SCHEMA_VERSION, write_results
from lab.demo.settings import DemoSettings, clip_path, heldout_start
from lab.errors import WeightsNotFoundError
from lab.files import atomic_write_json
from lab.eval.bench import bench
from lab.eval.evaluate import MetricSet, metric_label, retention
from lab.eval.vmaf import vmaf_note
from lab.models import load_decoder
from lab.models.interface import FolderNotEmptyError, check_save_target
from lab.ops.figures import profile_figure
from lab.ops.profiler import profile_decoder
from lab.progress import Progress, track
from lab.prune import prune
from lab.runs.lock import RunLock
from lab.runtime.fused.conv import onednn_conv3d
from lab.runtime.spec import default_runtime
from lab.runs.store import is_run, is_run_leftover
from lab.training.run_folder import check_run_target

log = logging.getLogger("lab")

STEPS = ("analyze", "prune", "swap", "distill", "eval", "bench", "profile", "report")
BASELINES = ("magnitude", "random")
#: Random selection is drawn with this many seeds and reported as mean, min and max: one draw can land
#: several dB from another, so a single seed says little about "random".
RANDOM_SEEDS = 5


def baseline_roles(seed: int) -> dict[str, tuple[str, int]]:
    """Eval role -> (criterion, seed) of every pruned student before training: independence, magnitude,
    and random with seeds ``seed .. seed + RANDOM_SEEDS - 1``."""
    roles = {"pruned-independence": ("independence", seed), "pruned-magnitude": ("magnitude", seed)}
    roles.update({random_role(k): ("random", k) for k in range(seed, seed + RANDOM_SEEDS)})
    return roles


def random_role(seed: int) -> str:
    return f"pruned-random-seed{seed}"


def row_label(role: str, teacher_name: str) -> str:
    """The one name of an eval role in the terminal table, report.html and results.json (rows' "decoder"):
    what the decoder is, trained or not, never a registered model's name (the shipped 'mini-wan-flash' is another
    model than this run's untrained swapped student)."""
    if role == "teacher":
        return f"teacher ({teacher_name})"
    if role == "swapped":
        return "student (pruned+swapped, untrained)"
    if role == "distilled":
        return "student (distilled)"
    what = role.removeprefix("pruned-")
    if what.startswith("random-seed"):
        what = f"random seed {what.removeprefix('random-seed')}"
    return f"pruned ({what}, untrained)"


class StepLog:
    """Times each step, logs '[i/n] step' on stderr, counts the steps on the main job's progress (lab.progress:
    rate and time left; each step's own work shows its own) and records {'status', 'seconds'}."""

    def __init__(self):
        self.steps: dict[str, dict] = {}
        self.progress = Progress("demo", len(STEPS), unit="step", every=1)

    @contextlib.contextmanager
    def step(self, name: str, what: str):
        log.info("[%d/%d] %s: %s", STEPS.index(name) + 1, len(STEPS), name, what)
        t0 = time.perf_counter()
        entry = self.steps.setdefault(name, {"status": "ok"})
        try:
            yield entry
        except BaseException:
            self.progress.close()  # a failed step leaves no bar drawn over the error below it
            raise
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        log.info("      %s done in %.1f s", name, entry["seconds"])
        self.progress.update(note=f"{name} done")
        if self.progress.n == len(STEPS):
            self.progress.close()


def _log_analyze_step(event: dict) -> None:
    if event["event"] == "step":
        log.debug("      analyze step %d/%d (%s)", event["step"], event["steps_total"], event["clip"])


def load_teacher(name: str, device: str = "cpu"):
    try:
        return load_decoder(name, device=device), True
    except WeightsNotFoundError as exc:
        log.warning("%s\nfalling back to the untrained architecture (random weights)", exc)
        torch.manual_seed(0)
        return load_decoder(name, weights="random", device=device), False


DEMO_MARKER = "lab_demo.json"
#: The decoder folders and the distillation run the demo writes under --out.
DECODER_OUTPUTS = ("student", "students/pruned", "distill-init")
RUN_OUTPUT = "distill"


def run_demo(out: str | Path, s: DemoSettings, overwrite: bool = False) -> dict:
    out = Path(out)
    check_outputs(out, overwrite)
    with RunLock(out):
        atomic_write_json(out / DEMO_MARKER, {"kind": "demo", "written_by": "python -m lab demo"}, indent=None)
        return _run_demo(out, s, overwrite)


def check_outputs(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an --out (or a folder in it the demo writes) that holds files not written
    by the lab, unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise FolderNotEmptyError(f"--out {out} is a file, not a folder; choose another --out.")
    if overwrite:
        return
    if out.is_dir() and not is_demo_folder(out) and any(not is_run_leftover(p.name) for p in out.iterdir()):
        raise FolderNotEmptyError(f"--out {out} is not empty and is not a demo's folder (no {DEMO_MARKER}); choose "
                                  f"a new or empty --out, or pass --overwrite to write the demo into it (its own "
                                  f"files are replaced, other files kept).")
    for sub in DECODER_OUTPUTS:
        check_save_target(out / sub)
    if not is_run(out / RUN_OUTPUT):
        check_run_target(out / RUN_OUTPUT)


def is_demo_folder(out: Path) -> bool:
    """A folder the demo wrote: its marker, or (demos before the marker) a results.json of the demo's schema."""
    if (out / DEMO_MARKER).is_file():
        return True
    try:
        results = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and "schema_version" in results and "settings" in results


def _run_demo(out: Path, s: DemoSettings, overwrite: bool) -> dict:
    t_start = time.perf_counter()
    torch.manual_seed(s.seed)
    steps = StepLog()
    teacher, trained = load_teacher(s.teacher, s.device)
    arch = teacher.arch
    keep = arch.flash_vaed_keep(arch.num_up_blocks(teacher.vae))

    with steps.step("analyze", f"{teacher.name} on {', '.join(s.calibration_clips)} ({s.calib_frames} frames at "
                               f"{s.calib_size[0]}x{s.calib_size[1]}), live hooks on every prunable tensor"):
        latents, names = calibration_latents(teacher, s.calibration_clips, frames=s.calib_frames, size=s.calib_size)
        analysis = analyze(teacher, latents, clip_names=names, subscribers=[_log_analyze_step])
        stage_report = analysis.stage_report()

    roles = baseline_roles(s.seed)
    with steps.step("prune", f"Flash-VAED widths {keep}: independence vs magnitude and {RANDOM_SEEDS} random seeds "
                             f"at the same width"):
        pruned = {}
        for role, (crit, seed) in track(roles.items(), "prune: criteria and seeds", unit="student"):
            pruned[role], info = prune(teacher, keep, crit, analysis=analysis, seed=seed,
                                       name=f"{teacher.name}-{role.removeprefix('pruned-')}")
        pruning = {"ratios": info["ratios"], "widths": info["widths"], "criteria": ["independence", *BASELINES],
                   "random_seeds": [seed for crit, seed in roles.values() if crit == "random"],
                   "decoder_params": info["decoder_params"], "teacher_decoder_params": info["teacher_decoder_params"],
                   "fold": info["fold"]}

    with steps.step("swap", "flash-vaed operator plan on the independence-pruned student"):
        # not '-flash': that is the name of the shipped, distilled student, another model than this untrained one
        swapped, sinfo = prune(teacher, keep, "independence", analysis=analysis, seed=s.seed, operators="flash-vaed",
                               name=f"{teacher.name}-flash-untrained")
        swap = {"operators": sinfo.get("operators", {}), "decoder_params": sinfo["decoder_params"]}

    with steps.step("distill", f"{s.distill_steps} steps on {', '.join(s.distill_clips)}") as entry:
        student, dinfo = distill_student(teacher, swapped, s.distill_clips, steps=s.distill_steps,
                                         frames=s.calib_frames, size=s.calib_size, run_dir=out / "distill",
                                         val_clips=s.distill_val_clips, seed=s.seed, device=s.device,
                                         overwrite=overwrite)
        entry["status"] = dinfo["status"]
    distilled = dinfo["status"] == "ok"
    student.name = f"{teacher.name}-flash-vaed" + ("" if distilled else "-undistilled")
    student_dir = student.save(out / "student", overwrite=overwrite)
    pruned_dir = pruned["pruned-independence"].save(out / "students" / "pruned", overwrite=overwrite)

    # The quality steps run every float32 3D conv with oneDNN (calibration and analyze, distill through its training
    # loop, and eval here): the same modules and hooks, the same sums in another order, where ATen gives the mini's
    # small causal steps to slow_conv3d (lab.runtime.fused.conv). Bench and profile time them as diffusers runs them.
    with steps.step("eval", f"held-out clip {s.heldout_note}"), onednn_conv3d(s.device):
        decoders = {**pruned, "swapped": swapped}
        if distilled:
            decoders["distilled"] = student
        ev, videos = evaluate_heldout(teacher, decoders, s)

    with steps.step("bench", f"{teacher.name} vs pruned vs student, {s.bench_frames} frames at "
                             f"{s.bench_size[0]}x{s.bench_size[1]}, interleaved, medians"):
        final_role = "distilled" if distilled else "swapped"
        bench = run_bench(teacher.name, trained, {row_label("pruned-independence", teacher.name): pruned_dir,
                                                  row_label(final_role, teacher.name): student_dir}, s,
                          default_fused=all(default_runtime(d) is not None for d in (teacher, student)))

    with steps.step("profile", "per-stage latency and MAC shares, teacher and student"):
        profile = run_profile(teacher, student, s)

    results = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "settings": s.to_dict(),
        "teacher": {"name": teacher.name, "trained_weights": trained, "decoder_params": teacher.decoder_params()},
        "clips": {"calibration": s.calibration_clips, "distill": s.distill_clips, "distill_val": s.distill_val_clips,
                  "heldout": s.heldout_clip, "heldout_note": s.heldout_note},
        "analysis": analysis.summary(),
        "pruning": pruning, "swap": swap, "distill": dinfo, "eval": ev,
        "quality": quality_summary(ev, distilled, pruning["random_seeds"]),
        "bench": bench, "profile": profile,
    }
    with steps.step("report", "side-by-side video, HTML report, results.json"):
        final = "distilled" if distilled else "swapped"
        video = write_video(out / "side_by_side.mp4", side_by_side(videos["clip"], videos["teacher"], videos[final]),
                            fps=ev["fps"])
        results["outputs"] = {"report": str(out / "report.html"), "results": str(out / "results.json"),
                              "side_by_side": str(video), "student": str(student_dir),
                              "pruned_student": str(pruned_dir)}
        if distilled:
            results["outputs"]["distill_run"] = dinfo.get("run")
        results["steps"] = steps.steps
        results["wall_seconds"] = round(time.perf_counter() - t_start, 2)
        write_report(out / "report.html", results, report_figures(results, stage_report, keep))
    results["steps"] = steps.steps
    results["wall_seconds"] = round(time.perf_counter() - t_start, 2)
    write_results(out / "results.json", results)
    return results


def evaluate_heldout(teacher, decoders: dict, s: DemoSettings) -> tuple[dict, dict]:
    """Every decoder on the held-out clip: metrics vs the real clip and vs the teacher's decode of
    the same latents (encoded once by the teacher), retention = PSNR / teacher PSNR vs the clip with the drop
    in dB beside it (lab.eval.evaluate.retention). Rows are named by row_label."""
    path = clip_path(s.heldout_clip)
    g = teacher.geometry
    clip = load_clip(path, frames=s.eval_frames, size=s.eval_size, start=heldout_start(s), frame_multiple=g.t,
                     spatial_multiple=g.spatial)
    fps = probe(path)["fps"] or 24.0
    ms = MetricSet(list(s.metrics), fps=fps).prepare()
    z = teacher.encode(clip.to(device=teacher.device, dtype=teacher.dtype))
    videos = {"clip": clip, "teacher": teacher.decode(z).float().cpu()}
    teacher_scores = ms.score(videos["teacher"], clip)
    # "decoder" is the row's one name (row_label), "model" the name the decoder object carries
    rows = [{"decoder": row_label("teacher", teacher.name), "role": "teacher", "model": teacher.name,
             "decoder_params": teacher.decoder_params(), "vs_clip": teacher_scores}]
    for role, dec in track(decoders.items(), "eval: decoders", unit="decoder"):
        videos[role] = dec.decode(z).float().cpu()
        row = {"decoder": row_label(role, teacher.name), "role": role, "model": dec.name,
               "decoder_params": dec.decoder_params(),
               "vs_clip": ms.score(videos[role], clip), "vs_teacher": ms.score(videos[role], videos["teacher"])}
        if "psnr" in row["vs_clip"]:
            row.update(retention(row["vs_clip"]["psnr"], teacher_scores["psnr"]))
        rows.append(row)
        log.info("      %-36s PSNR %.2f dB vs clip, %.2f dB vs teacher", row["decoder"],
                 row["vs_clip"].get("psnr", float("nan")), row["vs_teacher"].get("psnr", float("nan")))
    ev = {"clip": str(path), "start_frame": heldout_start(s), "video_shape": list(clip.shape),
          "latents_shape": list(z.shape), "fps": fps, "metrics": list(s.metrics),
          "metric_labels": {m: metric_label(m) for m in s.metrics}, "decoders": rows}
    if "vmaf" in s.metrics:
        ev["vmaf_note"] = vmaf_note([r["vs_clip"].get("vmaf") for r in rows])
    return ev, videos


def quality_summary(ev: dict, distilled: bool, random_seeds: list[int]) -> dict:
    """The final student's retention, and independence against each baseline before training (PSNR vs
    the teacher's decode of the held-out clip, same widths): magnitude, and the mean of the random seeds
    with their min and max. Wins and losses are both reported as they were measured."""
    by_role = {r["role"]: r for r in ev["decoders"]}
    psnr = {role: row["vs_teacher"]["psnr"] for role, row in by_role.items() if "vs_teacher" in row}
    ind, mag = psnr["pruned-independence"], psnr["pruned-magnitude"]
    seeds = [psnr[random_role(k)] for k in random_seeds]
    rand = {"seeds": list(random_seeds), "psnr": seeds, "mean": sum(seeds) / len(seeds), "min": min(seeds),
            "max": max(seeds)}
    versus = [_versus("magnitude", ind, mag), _versus(f"random (mean of {len(seeds)} seeds)", ind, rand["mean"])]
    final = by_role["distilled" if distilled else "swapped"]
    return {"final_student": final["role"], "final_label": final["decoder"], "distilled": distilled,
            "retention": final.get("retention"), "psnr_drop_db": final.get("psnr_drop_db"),
            "final_psnr_vs_clip": final["vs_clip"]["psnr"],
            "teacher_psnr_vs_clip": by_role["teacher"]["vs_clip"]["psnr"],
            "psnr_vs_teacher_before_training": {"independence": ind, "magnitude": mag, "random": rand},
            "independence_vs_baselines": versus,
            "random_seeds_beaten": sum(ind > p for p in seeds),
            # beats magnitude and the random mean (not necessarily every random seed: see random_seeds_beaten)
            "independence_beats_baselines": all(v["independence_wins"] for v in versus)}


def _versus(baseline: str, independence: float, psnr: float) -> dict:
    return {"baseline": baseline, "psnr": psnr, "margin_db": independence - psnr,
            "independence_wins": independence > psnr}


def run_bench(teacher_name: str, trained: bool, students: dict[str, Path], s: DemoSettings, *,
              default_fused: bool = False) -> dict:
    """The teacher and the students as diffusers runs them (eager: the paper's comparison; every speedup divides
    by the first row), then, with ``default_fused`` (both run the lab's fused runtime by default on this device),
    the teacher and the final student as ``lab decode`` runs them: an eager teacher at the demo's small size loses
    most of its CPU time to ATen's choice of slow_conv3d, so the eager ratio says more than a user of the lab gains.
    ``student_speedup`` holds the final student's ratio to the teacher on each runtime."""
    final_label, final_dir = list(students.items())[-1]
    names = [teacher_name, *(str(p) for p in students.values())]
    labels = [row_label("teacher", teacher_name), *students]
    if default_fused:
        names += [f"{teacher_name}@fused", f"{final_dir}@fused"]
        labels += [f"{labels[0]} @fused", f"{final_label} @fused"]
    result = bench(names, weights=None if trained else "random", device=s.device, frames=s.bench_frames,
                   size=s.bench_size, repeats=s.bench_repeats, warmup=1, memory=s.bench_memory, macs=True)
    rows = result["decoders"]
    for row, label in zip(rows, labels):
        row["label"] = label  # the same names as the eval rows
        log.info("      %-36s %.3f s median, %.2fx", label, row["seconds"], row["speedup"])
    result["student_speedup"] = {"eager": rows[0]["seconds"] / rows[len(students)]["seconds"]}
    if len(rows) > len(students) + 1:
        result["student_speedup"]["fused"] = rows[-2]["seconds"] / rows[-1]["seconds"]
    return result


def run_profile(teacher, student, s: DemoSettings) -> dict:
    g = teacher.geometry
    t, size = g.latent_frames_for(s.bench_frames), g.latent_size_for(*s.bench_size)
    return {role: profile_decoder(dec, t, size, repeats=s.profile_repeats, warmup=1)
            for role, dec in (("teacher", teacher), ("student", student))}


def report_figures(results: dict, stage_report: dict, keep: dict) -> dict:
    from lab.demo import figures as f  # deferred: it imports plotly, which every lab.demo import would then load
    return {"Channel independence per stage": independence_figure(stage_report, keep=keep),
            "Explained variance vs kept channels": explained_variance_figure(stage_report, keep=keep),
            "PSNR on the held-out clip": f.metrics_figure(results["eval"]["decoders"]),
            "Decode speedup": f.bench_figure(results["bench"]),
            "Profile: teacher": profile_figure(results["profile"]["teacher"]),
            "Profile: student": profile_figure(results["profile"]["student"])}
