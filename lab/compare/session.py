"""A compare session: one teacher, one clip at the demo's working size, the teacher's latents of it, and
the channel analysis of the teacher on those latents, computed once and cached.

Moving a keep ratio rebuilds the student from the cached analysis (``lab.prune.prune(...,
analysis=...)`` only selects channels and folds weights: no decoder pass), then decodes it. Every
decoder compared gets the same latents; each is scored against the real clip and the teacher's
decode, and timed (lab.compare.measure).

A session given a ``ModelAccess`` (the app's) loads only what that allows (lab.compare.access);
without one (notebooks, scripts) it loads any name or folder, as ``load_decoder`` does.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from lab.compare.access import ModelAccess
from lab.compare.clips import LIMITS, ClipLimits, load_working_clip
from lab.analysis.figures import explained_variance_figure, stage_figure, stage_ratio
from lab.analysis.linalg import residual_gram, subset_residual
from lab.compare.explain import figure_caption, kept_first, main_group, swap_note
from lab.compare.measure import cpu_memory, measure_decode
from lab.compare.render import difference, labelled_row
from lab.data.video import write_video
from lab.errors import ConfigError, LabError, WeightsNotFoundError
from lab.models import load_decoder
from lab.models.registry import list_entries
from lab.pids import pid_alive
from lab.runtime.fused import set_fused, why_not_fusable
from lab.prune import parse_keep, prune, select_channels
from lab.prune.criteria import NEEDS_SENSITIVITY
from lab.analysis import analyze
from lab.eval.evaluate import MetricSet

log = logging.getLogger("lab")

#: progress(fraction in [0, 1], description)
Progress = Callable[[float, str], None]
#: students kept per session (a slider dragged back and forth re-uses them)
STUDENT_CACHE = 4
#: compare calls whose video files are kept on disk (the app has copied older ones to its cache)
KEEP_CALLS = 8
#: the seed of every student's selection (what the random criterion draws): prune's and kept_channels' alike
SEED = 0
#: the difference video shows |decoder - real| times this
DIFF_GAIN = 4.0
#: how the comparison may run its decoders: diffusers' eager modules, or the lab's fused runtime (lab.runtime.spec)
RUNTIMES = ("eager", "fused", "fused+subpixel")
#: the app's temporary folders: tempdir/<prefix>XXXX, holding OWNER_FILE (the pid of the server)
APP_TMP_PREFIX = "vaed-compare-app-"
OWNER_FILE = "owner.pid"


def default_device() -> torch.device:
    """LAB_DEVICE when set (``python -m lab app compare --device`` sets it), else CUDA when there is one."""
    chosen = os.environ.get("LAB_DEVICE")
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def no_progress(fraction: float, desc: str) -> None:
    pass


@dataclass(frozen=True)
class StudentSpec:
    """A pruned (and optionally operator-swapped) student of the session's teacher.
    ``keep``: a ratio for every prunable stage, or ((stage, ratio), ...)."""
    keep: float | tuple[tuple[str, float], ...]
    criterion: str = "independence"
    operators: str | None = None  # a plan name or 'STAGE=OP,...'; None or 'keep': no swap

    @classmethod
    def make(cls, keep, criterion: str = "independence", operators: str | None = None) -> "StudentSpec":
        if isinstance(keep, dict):
            keep = tuple(sorted((str(s), float(r)) for s, r in keep.items()))
        else:
            keep = float(keep)
        ops = (operators or "").strip() or None
        return cls(keep, criterion, None if ops == "keep" else ops)

    @property
    def keep_arg(self):
        return dict(self.keep) if isinstance(self.keep, tuple) else self.keep

    @property
    def label(self) -> str:
        k = (",".join(f"{s}={r:g}" for s, r in self.keep) if isinstance(self.keep, tuple) else f"{self.keep:g}")
        # Swapped operators are initialised from the layers they replace, never trained here: the name says so.
        return f"pruned {k} {self.criterion}" + (f" +{self.operators} (untrained)" if self.operators else "")


def merge_keep(global_ratio: float, per_stage: str | None, prunable: list[str]):
    """The slider's ratio for every prunable stage, overridden by 'STAGE=RATIO,...' text when given."""
    text = (per_stage or "").strip()
    if not text:
        return float(global_ratio)
    parsed = parse_keep(text)
    if not isinstance(parsed, dict):
        raise ConfigError(f"per-stage ratios must be STAGE=RATIO pairs (e.g. up2=0.125,up3=0.25), got '{text}'; "
                          f"the slider sets the global ratio.")
    return {**{s: float(global_ratio) for s in prunable}, **parsed}


@dataclass
class CompareResult:
    rows: list[dict]
    side_by_side: Path
    difference: Path
    labels: list[str]
    info: dict = field(default_factory=dict)


class CompareSession:
    """See the module docstring. ``clip`` is a bundled/sample name, or a file path with ``upload=True``
    (validated against ``limits``). ``access``: what the teacher, its weights and other decoders may
    be (the app's ModelAccess); None loads anything."""

    def __init__(self, teacher: str = "mini-wan", *, weights: str | None = None, clip: str = "bbb-128",
                 upload: bool = False, frames: int = 9, short_side: int = 64, device=None,
                 out_dir: str | Path | None = None, limits: ClipLimits = LIMITS, access: ModelAccess | None = None):
        self.device = torch.device(device) if device is not None else default_device()
        self.access = access
        t0 = time.perf_counter()
        if access is not None:  # from here on only resolved references: what was checked is what loads
            teacher, weights = access.decoder(teacher), access.weights(weights)
        self.teacher_ref, self.teacher_weights = teacher, weights or None
        self.teacher = self._load_teacher(teacher, weights or None)
        if not self.teacher.has_encoder:
            raise LabError(f"{self.teacher.name} is a {self.teacher.family} without an encoder; pick a teacher VAE "
                           f"(mini-wan, mini-ltx, wan2.1 with weights, ...) so the clip can be encoded.")
        g = self.teacher.geometry
        self.clip, self.clip_info = load_working_clip(clip, frame_multiple=g.t, spatial_multiple=g.spatial,
                                                      frames=frames, short_side=short_side, limits=limits,
                                                      upload=upload)
        self.clip = self.clip.to(self.device)
        self.latents = self.teacher.encode(self.clip)
        self.load_s = time.perf_counter() - t0
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="vaed-compare-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.analysis_s: float | None = None
        self.analysis_runs = 0  # how many times the decoder was streamed for analysis (tests check it is 1)
        self.student_builds = 0
        self._analysis = None
        self._report = None
        self._students: OrderedDict[StudentSpec, tuple] = OrderedDict()
        self._others: dict[str, object] = {}
        self._refs: dict[str, str] = {}  # what the user typed -> what was checked and loaded
        self._teacher_run: tuple[torch.Tensor, dict] | None = None
        self._calls = 0
        self._memory: dict = {}  # decoder key -> CPU peak memory (a fresh process each: measured once)
        self._lock = threading.RLock()

    def _load_teacher(self, teacher: str, weights: str | None):
        try:
            return load_decoder(teacher, weights=weights, device=self.device)
        except WeightsNotFoundError as exc:
            if self.access is None or self.access.allow_downloads:
                raise
            raise WeightsNotFoundError(f"{exc} (this app reads weights only from its models folders and the local "
                                       f"Hugging Face cache: start it with --allow-downloads to fetch them)") from None

    # ----- what the session is -----------------------------------------------------------------
    def describe(self) -> dict:
        return {"teacher": self.teacher.name, "teacher_params": self.teacher.decoder_params(),
                "device": str(self.device), "threads": torch.get_num_threads(), **self.clip_info,
                "latents_shape": list(self.latents.shape), "load_s": self.load_s,
                "analysis_s": self.analysis_s,
                "can_prune": self.can_prune if self._analysis is not None else None}

    @property
    def can_prune(self) -> bool:
        """Whether the analysis found prunable channel groups (lab.prune decides which teachers it can
        prune; the demo follows it)."""
        return bool(self.prunable_stages())

    # ----- the cached analysis -----------------------------------------------------------------
    def analysis(self, progress: Progress = no_progress):
        """The teacher's channel analysis on this clip's latents: streamed once, then cached."""
        with self._lock:
            if self._analysis is None:
                def step(event):
                    if event["event"] == "step":
                        progress(event["step"] / event["steps_total"],
                                 f"analysing channels: step {event['step']}/{event['steps_total']}")
                t0 = time.perf_counter()
                self._analysis = analyze(self.teacher, self.latents, clip_names=[self.clip_info["clip"]],
                                         subscribers=[step])
                self.analysis_s = time.perf_counter() - t0
                self.analysis_runs += 1
            return self._analysis

    def report(self, progress: Progress = no_progress) -> dict:
        """The analysis's stage report with correlation matrices, computed once per clip."""
        with self._lock:
            if self._report is None:
                self._report = self.analysis(progress).stage_report(matrices=True)
            return self._report

    def stages(self) -> list[str]:
        return list(self.report())

    def prunable_stages(self) -> list[str]:
        return [s for s, rs in self.report().items() if any(r["prunable"] for r in rs)]

    def heatmap(self, stage: str, keep):
        return stage_figure(self.report(), stage, keep)

    def explained_variance(self, stage: str, keep):
        return explained_variance_figure(self.report(), stage=stage, keep=keep)

    def figures(self, stage: str, spec: "StudentSpec | None" = None) -> tuple:
        """(heatmap, explained-variance curve, caption) of ``stage`` as the student of ``spec`` sees it:
        its ratios, and the red marks around exactly the channels it kept (built from the cached analysis
        if needed), so the figures show what a decode with ``spec`` used. None: nothing marked."""
        report = self.report()
        kept = self.kept_channels(spec) if spec is not None and self.can_prune else {}
        keep = spec.keep_arg if spec is not None else None
        rows = [kept_first(r, kept.get(r["group"])) for r in report.get(stage, [])]
        # An unknown stage has no rows: stage_figure's error then names the stages with data.
        heat = stage_figure({**report, stage: rows} if rows else report, stage, keep)
        curve = explained_variance_figure(report, stage=stage, keep=keep)
        main = main_group(rows)
        explained = self.explained_by(main["group"], kept[main["group"]]) if main["group"] in kept else None
        caption = figure_caption(rows, stage, stage_ratio(keep, stage), kept,
                                 spec.criterion if spec is not None else "independence", explained)
        return heat, curve, caption

    def kept_channels(self, spec: "StudentSpec") -> dict[str, list[int]]:
        """Group -> the channels the student of ``spec`` kept (its narrowed groups only): from the built student
        when it is cached, else the selection alone (a slider move redraws the figures without building one)."""
        with self._lock:
            if spec in self._students:
                return self._students[spec][1]["kept"]
        if spec.criterion in NEEDS_SENSITIVITY:  # its sensitivities are added by the build
            return self.student(spec)[1]["kept"]
        return select_channels(self.teacher, spec.keep_arg, spec.criterion, analysis=self.analysis(), seed=SEED)

    def explained_by(self, group: str, kept: list[int]) -> float:
        """Fraction of ``group``'s variance that ``kept`` channels explain (affine least squares), on
        this clip: what the least-squares fold can rebuild."""
        analysis = self.analysis()
        gram = analysis.selection_gram(analysis.group(group))
        total = float(residual_gram(gram).diagonal().sum())
        return 1.0 - subset_residual(gram, kept) / total if total > 0 else 1.0

    def swap_note(self, spec: "StudentSpec") -> str:
        """The note an operator-swapped student gets (untrained: it needs distillation); '' otherwise."""
        g = self.teacher.geometry
        distilled = [e.name for e in list_entries() if e.family == "student" and e.latent_channels == g.channels
                     and tuple(e.compression) == tuple(g.compression)]
        arch = self.teacher.arch
        return swap_note(spec.operators, arch, arch.num_up_blocks(self.teacher.vae), spec.label, distilled)

    # ----- decoders ----------------------------------------------------------------------------
    def student(self, spec: StudentSpec, progress: Progress = no_progress):
        """(student, prune info) for ``spec``, built from the cached analysis (no decoder pass)."""
        with self._lock:
            if spec in self._students:
                self._students.move_to_end(spec)
                return self._students[spec]
            analysis = self.analysis(progress)
            if not self.can_prune:
                raise ConfigError(f"{self.teacher.name}: the analysis found no prunable channels, so no student can "
                                  f"be built from it; compare its own decode, saved or lightweight decoders.")
            progress(0.0, f"building {spec.label}")
            t0 = time.perf_counter()
            student, info = prune(self.teacher, spec.keep_arg, spec.criterion, analysis=analysis,
                                  operators=spec.operators, name=spec.label, seed=SEED)
            info["build_s"] = time.perf_counter() - t0  # info["kept"]: the channels it kept (the figures)
            self.student_builds += 1
            self._students[spec] = (student, info)
            while len(self._students) > STUDENT_CACHE:
                self._students.popitem(last=False)
            return student, info

    def other(self, name: str):
        """A registered decoder or a folder saved by the lab, checked to decode this teacher's latents."""
        with self._lock:
            if name not in self._others:
                ref = self.access.decoder(name) if self.access is not None else name
                dec = load_decoder(ref, device=self.device)
                if dec.geometry != self.teacher.geometry:
                    raise ConfigError(f"{dec.name} decodes {dec.geometry.channels}-channel latents with compression "
                                      f"{list(dec.geometry.compression)}, but {self.teacher.name} makes "
                                      f"{self.teacher.geometry.channels}-channel latents with "
                                      f"{list(self.teacher.geometry.compression)}; pick a decoder of this teacher.")
                self._others[name], self._refs[name] = dec, ref
            return self._others[name]

    def teacher_run(self) -> tuple[torch.Tensor, dict]:
        """The teacher's decode and timing (measured once: it does not change with the slider)."""
        with self._lock:
            if self._teacher_run is None:
                self._teacher_run = measure_decode(self.teacher, self.latents)
            return self._teacher_run

    # ----- the comparison ----------------------------------------------------------------------
    def _measure(self, dec, runtime: str, repeats: int, row: dict) -> tuple[torch.Tensor, dict]:
        """measure_decode under ``runtime``: the fused runtime is installed for this decode and removed after
        (the session keeps eager decoders: analysis hooks and figures need them). A decoder without one runs
        eagerly, and its row says why."""
        if runtime == "eager":
            return measure_decode(dec, self.latents, repeats)
        why = why_not_fusable(dec)
        if why is not None:
            row["note"] = " ".join(filter(None, [row.get("note"), f"{row['decoder']} runs eagerly: {why}."]))
            return measure_decode(dec, self.latents, repeats)
        set_fused(dec, True, subpixel="subpixel" in runtime.split("+"))
        try:
            row["decoder"] = f"{row['decoder']}@{runtime}"
            return measure_decode(dec, self.latents, repeats)
        finally:
            set_fused(dec, False)

    def memory(self, spec, runtime: str = "eager") -> dict:
        """CPU peak memory of one decoder ('teacher', a StudentSpec, or a name/folder) under ``runtime``,
        measured once in a fresh process (lab.compare.measure); students are saved to the session folder
        for it."""
        key = (spec, runtime)
        with self._lock:
            if key not in self._memory:
                weights = None
                if spec == "teacher":
                    ref, weights = self.teacher_ref, self.teacher_weights
                elif isinstance(spec, StudentSpec):
                    student, _ = self.student(spec)
                    ref = str(student.save(self.out_dir / "students" / f"s{len(self._memory):04d}"))
                else:
                    self.other(spec)
                    ref = self._refs[spec]
                size = self.clip_info["size"]
                ref = ref if runtime == "eager" else f"{ref}@{runtime}"
                self._memory[key] = cpu_memory(ref, weights, self.clip_info["frames"], (size[0], size[1]))
            return self._memory[key]

    def compare(self, decoders: list, *, runtime: str = "eager", vmaf: bool = False, repeats: int = 2,
                diff_gain: float = DIFF_GAIN, memory: bool = False, progress: Progress = no_progress) -> CompareResult:
        """Decode the session's latents with each decoder ('teacher', a StudentSpec, or a registered
        name / saved folder), score and time them, and write the side-by-side and difference videos.
        ``runtime`` (one of RUNTIMES): how every decoder runs (lab.runtime.fused for the fused ones; speedups
        stay against the eager teacher). ``memory``: also measure CPU peak memory (a fresh process per decoder,
        cached; on CUDA it is always measured, in process). A decoder that cannot be built gets a row with its
        ``error``; the others still run."""
        if not decoders:
            raise ConfigError("choose at least one decoder to compare (teacher, student, or a saved/registered one).")
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime '{runtime}'; pick one of {', '.join(RUNTIMES)}.")
        with self._lock:
            names = ["psnr", "ssim"] + (["vmaf"] if vmaf else [])
            metrics = MetricSet(names, fps=self.clip_info["fps"])
            if "teacher" in decoders and self._teacher_run is not None:
                # Re-timed when it is shown, so its speedups compare decodes made under the same load.
                self._teacher_run = measure_decode(self.teacher, self.latents, repeats)
            teacher_video, teacher_stats = self.teacher_run()
            rows, videos, labels = [], [self.clip.cpu()], ["real"]
            for i, spec in enumerate(decoders):
                progress(i / len(decoders), f"decoding {getattr(spec, 'label', spec)}")
                row = {"decoder": getattr(spec, "label", str(spec)), "error": None}
                try:
                    if spec == "teacher":
                        row.update(kind="teacher", decoder=self.teacher.name)
                        dec = None if runtime == "eager" else self.teacher
                        video, stats = teacher_video, teacher_stats
                    else:
                        if isinstance(spec, StudentSpec):
                            dec, info = self.student(spec, progress)
                            row.update(kind="student", build_s=info["build_s"], widths=info["widths"],
                                       operators=info.get("operators", {}))
                            if note := self.swap_note(spec):
                                row["note"] = note
                        else:
                            dec = self.other(spec)
                            row.update(kind=dec.family)
                    if dec is not None:
                        video, stats = self._measure(dec, runtime, repeats, row)
                except LabError as exc:
                    row["error"] = str(exc)
                    rows.append(row)
                    continue
                row.update({k: v for k, v in stats.items() if k != "times"})
                if memory and self.device.type == "cpu":
                    progress((i + 0.5) / len(decoders), f"peak memory of {row['decoder']} (fresh process)")
                    try:
                        row.update(self.memory(spec, runtime))
                    except LabError as exc:  # the picture and timings stand; say why memory is missing
                        row["peak_mem_kind"] = f"unavailable: {exc}"
                row["speedup"] = teacher_stats["seconds"] / stats["seconds"]
                row["params_ratio"] = stats["decoder_params"] / teacher_stats["decoder_params"]
                row.update(metrics.score(video, self.clip))
                if video is not teacher_video:  # a student, another decoder, or the teacher under another runtime
                    row.update({f"{k}_vs_teacher": v for k, v in metrics.score(video, teacher_video).items()})
                rows.append(row)
                videos.append(video.cpu())
                labels.append(row["decoder"])
            progress(0.95, "writing videos")
            call = self._next_call_dir()
            fps = self.clip_info["fps"]
            sbs = write_video(call / "side_by_side.mp4", labelled_row(videos, labels), fps=fps)
            diffs = [difference(v, self.clip, gain=diff_gain) for v in videos]
            # The page's title says what the columns hold (|decoder - real| x gain): the names suffice here.
            diff_labels = ["real (zero)"] + labels[1:]
            dif = write_video(call / "difference.mp4", labelled_row(diffs, diff_labels), fps=fps)
            for i, (row, video) in enumerate(zip([r for r in rows if not r["error"]], videos[1:])):
                row["video"] = str(write_video(call / f"decoder{i:02d}.mp4", video, fps=fps))
            return CompareResult(rows, sbs, dif, labels, self.describe())

    def _next_call_dir(self) -> Path:
        self._calls += 1
        old = self.out_dir / f"call{self._calls - KEEP_CALLS:05d}"
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        d = self.out_dir / f"call{self._calls:05d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def close(self) -> None:
        shutil.rmtree(self.out_dir, ignore_errors=True)


def extra_decoders(geometry=None) -> list[str]:
    """Registered decoders the demo can offer besides the teacher and its pruned students: every
    lightweight decoder and registered student (the list follows the registry), only those that
    decode latents of ``geometry`` (a LatentGeometry) when given."""
    return [e.name for e in list_entries() if e.family in ("lightweight", "student")
            and (geometry is None or (e.latent_channels == geometry.channels
                                      and tuple(e.compression) == tuple(geometry.compression)))]


class SessionCache:
    """Sessions by (teacher, weights, clip, frames, short side), most recent kept: every user and API
    call on the same teacher and clip shares one cached analysis. ``access``: what sessions may load
    (lab.compare.access); the app's cache always has one. Without ``out_root`` the cache makes its own
    temporary folder, marked with this process's pid so that a later start can clear it if this
    process dies before ``close``."""

    def __init__(self, capacity: int = 2, out_root: str | Path | None = None, device=None,
                 access: ModelAccess | None = None):
        self.capacity = capacity
        self.out_root = Path(out_root) if out_root else _owned_tmpdir()
        self.device = device
        self.access = access
        self._sessions: OrderedDict[tuple, CompareSession] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, teacher: str, weights: str | None, clip: str, upload: bool, frames: int,
            short_side: int) -> CompareSession:
        ident = clip
        if upload:  # the same upload path could be reused for another file: key on its size and time too
            st = Path(clip).stat() if Path(clip).exists() else None
            ident = f"{clip}:{st.st_size}:{st.st_mtime_ns}" if st else clip
        key = (teacher, weights or None, ident, bool(upload), int(frames), int(short_side))
        with self._lock:
            if key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
            out = self.out_root / f"s{abs(hash(key)) % 10**10:010d}"
            session = CompareSession(teacher, weights=weights, clip=clip, upload=upload, frames=int(frames),
                                     short_side=int(short_side), device=self.device, out_dir=out,
                                     access=self.access)
            self._sessions[key] = session
            while len(self._sessions) > self.capacity:
                _, old = self._sessions.popitem(last=False)
                old.close()
            return session

    def clear(self) -> None:
        """Drop every session and its files (the app's policy changed, or it is shutting down)."""
        with self._lock:
            while self._sessions:
                self._sessions.popitem()[1].close()

    def close(self) -> None:
        """Drop every session and remove the cache's folder (the app calls it when it stops)."""
        self.clear()
        shutil.rmtree(self.out_root, ignore_errors=True)


def _owned_tmpdir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix=APP_TMP_PREFIX))
    (folder / OWNER_FILE).write_text(str(os.getpid()))
    return folder


def sweep_stale_tmpdirs(tmp: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders of compare apps that died without cleaning up (killed, crashed):
    those of this user whose owner pid is gone. Folders of a live app, and any folder without an owner
    file, are left alone. Returns what was removed."""
    removed = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(f"{APP_TMP_PREFIX}*"):
        try:
            if folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
            pid = int((folder / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
