"""Every command line in the README's ```bash blocks works as written.

Each ``python -m lab ...`` line is parsed by the lab's own parser (a wrong flag or value fails here, in
milliseconds), then run in a temporary folder in README order (later lines use what earlier ones wrote:
z.pth, runs/flash, the distillation run), shrunk to test size without changing a flag the README shows:
--frames/--size/--steps get tiny values, calibration one clip, decodes and timings one repeat, registered
full-size decoders with ``--weights random`` become the tiny test configs of the same classes (wan2.1 ->
wan2.1-tiny; so the full-size prune is checked by its arguments only), and the distillation config is a copy
of the named one with a few steps on small crops. The teacher trains as on a user's machine: without
../shared (LAB_SHARED_ASSETS points nowhere). About 2 minutes on 2 idle cores.

Some lines are only parsed, each for the reason in PARSE_ONLY / SKIPPED: they need a GPU (--device cuda),
start servers (app) or several processes (torchrun), take minutes of full-size held-out scoring (ship), or
are not the lab's commands (make, jupyter).
"""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from lab import paths

README = paths.REPO_ROOT / "README.md"

# Lines that are only parsed with the lab's parser, and why.
PARSE_ONLY = {
    "--device cuda": "needs a CUDA GPU; tests run on CPU (the GPU paths run in scripts/gpu/run.sh)",
    "torchrun": "starts several processes; distillation under torchrun is tested in tests/distill",
    "app compare": "starts the Gradio server; the app is tested in tests/apps",
    "app dashboard": "starts the Streamlit server; the app is tested in tests/apps",
    "lab ship": ("scores the shipped model on 17 frames of each held-out clip at full size (minutes on a shared "
                 "CPU); ship runs in tests/cli's human-output test and tests/test_ship_card.py"),
}
# Lines that are not python -m lab commands, and why they are not run here.
SKIPPED = {
    "make demo": "installs the lab and runs the demo at full size; tests/demo runs the demo (--quick)",
    "make test": "runs this very test suite",
    "jupyter lab": "starts a notebook server; tests/notebooks runs every notebook",
}

# Flag -> the value it gets at test size (only where the README gives the flag).
TINY_VALUES = {"--frames": "5", "--size": "16x16", "--steps": "2", "--budget": "10", "--per-file": "1"}
# Flags added at test size (where the command takes them and the README does not set them).
TINY_EXTRAS = {
    "decode": ["--frames", "5"],
    "encode": ["--frames", "5"],
    "eval": ["--frames", "5", "--size", "32x32", "--metrics", "psnr,ssim"],
    # One calibration clip (the default is every clip at hand) and one output probe: what --refine costs.
    "analyze": ["--frames", "5", "--size", "32x32", "--clips", "bbb-128"],
    "prune": ["--frames", "5", "--size", "32x32", "--clips", "bbb-128", "--sensitivity-probes", "1"],
    "bench": ["--repeats", "1", "--no-memory", "--no-macs"],
    "profile": ["--repeats", "1"],
    "search": ["--repeats", "1", "--candidates", "keep,conv2d", "--stages", "up3"],
    "table": ["--frames", "5", "--repeats", "1", "--warmup", "1", "--no-vmaf", "--clips", "carphone"],
    "teacher": ["--steps", "2", "--batch", "1", "--frames", "5", "--crop", "32", "--short-sides", "64",
                "--warmup", "1", "--eval-frames", "5"],
    "data encode": ["--frames", "5", "--size", "32", "--per-file", "1"],
    "data fetch": [],
}
# What a tiny distillation config changes in the README's config (key = value lines of the TOML).
TINY_CONFIG = {"max_steps": "2", "eval_every": "2", "checkpoint_every": "2", "frames": "5", "crop": "32",
               "val_frames": "5", "val_size": "32", "calibration_frames": "5", "calibration_size": "32",
               "short_sides": "[64]"}


def readme_lines(text: str) -> list[str]:
    """The command lines of the ```bash blocks, comments dropped, in order."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.split(r"\s#", line)[0].strip()  # a comment after the command
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def lab_argv(line: str) -> list[str] | None:
    """The arguments after ``python -m lab`` (or ``torchrun ... -m lab``), or None for other commands."""
    words = shlex.split(line)
    if words[:3] == ["python", "-m", "lab"]:
        return words[3:]
    if words and words[0] == "torchrun" and "-m" in words and words[words.index("-m") + 1] == "lab":
        return words[words.index("-m") + 2:]
    return None


def why_not_run(line: str) -> str | None:
    for key, why in {**PARSE_ONLY, **SKIPPED}.items():
        if key in line:
            return why
    return None


def check_parses(argv: list[str]) -> str | None:
    """None when the lab's parser takes ``argv``, else the usage error it prints."""
    import contextlib
    import io

    from lab.cli import build_parser
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        return err.getvalue().strip() or f"exit {exc.code}"
    return None


def tiny(argv: list[str], tmp: Path) -> list[str]:
    """``argv`` at test size (see the module docstring)."""
    out = list(argv)
    for i, a in enumerate(out[:-1]):
        if a in TINY_VALUES:
            out[i + 1] = TINY_VALUES[a]
    if out[:2] == ["data", "encode"] and "--size" in out:
        out[out.index("--size") + 1] = "32"  # a cache's --size is one side: square windows
    if "random" in out:  # full-size registered decoders with random weights -> the tiny configs of their classes
        out = [re.sub(r"\bwan2\.1(?=$|[,@])", "wan2.1-tiny", a) for a in out]
    if "--config" in out:
        i = out.index("--config") + 1
        out[i] = str(tiny_config(Path(out[i]), tmp))
    if out[0] == "data" and "--data" in out:
        i = out.index("--data") + 1
        out[i] = out[i].replace("/videos/", f"{tmp}/videos/")  # the README's example dataset, one clip of it
    given = set(out)
    extras = TINY_EXTRAS.get(" ".join(out[:2]), TINY_EXTRAS.get(out[0], []))
    for j in range(0, len(extras), 2):
        if extras[j] not in given:
            out += extras[j:j + 2]
    return out


def tiny_config(path: Path, tmp: Path) -> Path:
    """A copy of the config the README names with the few-step values of TINY_CONFIG."""
    text = (paths.REPO_ROOT / path).read_text()
    for key, value in TINY_CONFIG.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    assert "max_steps = 2" in text, f"{path} names no phase steps to shrink"
    dest = tmp / "tiny-configs" / path.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


LINES = readme_lines(README.read_text())
LAB_LINES = [line for line in LINES if lab_argv(line) is not None]


def test_the_readme_has_commands_to_check():
    assert len(LAB_LINES) >= 20, LAB_LINES
    for line in LINES:  # every other line is one this test knows not to run
        assert lab_argv(line) is not None or why_not_run(line), f"unknown README command: {line}"


@pytest.mark.parametrize("line", LAB_LINES)
def test_readme_command_parses(line):
    error = check_parses(lab_argv(line))
    assert error is None, f"{line}\n{error}"


def test_a_wrong_flag_in_the_readme_fails_this_test():
    text = "```bash\npython -m lab analyze --teacher mini-wan   # channel independence\n```\n"
    (line,) = readme_lines(text)
    error = check_parses(lab_argv(line))
    assert error is not None and "required: --decoder" in error
    assert "unrecognized arguments: --clips" in check_parses(["distill", "--out", "r", "--clips", "bbb-128"])


@pytest.fixture(scope="module")
def readme_runs(tmp_path_factory, lab_cli, sample_clips):
    """Every README line that is not parse-only, run in README order in one temporary folder."""
    import os
    tmp = tmp_path_factory.mktemp("readme")
    (tmp / "videos").mkdir()
    shutil.copy(paths.bundled_clips_dir() / "bbb_128x128_33f.mp4", tmp / "videos" / "a.mp4")
    for name in ("configs", "data"):  # the README's relative paths (configs/..., data/checkpoints/...)
        (tmp / name).symlink_to(paths.REPO_ROOT / name)
    runs = [(line, tiny(lab_argv(line), tmp)) for line in LAB_LINES if not why_not_run(line)]
    env = {**os.environ, "LAB_SHARED_ASSETS": str(tmp / "no-shared-assets")}  # a user's machine: no ../shared
    results = lab_cli([argv for _, argv in runs], env=env, cwd=tmp, timeout=1700)
    return tmp, {line: (argv, r) for (line, argv), r in zip(runs, results)}


# The README's commands run one after the other in the fixture of the first of these tests: about 2 minutes on
# 2 idle cores, several times that on a CPU shared with other jobs, hence a longer limit than the suite's.
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("line", [line for line in LAB_LINES if not why_not_run(line)])
def test_readme_command_runs(line, readme_runs):
    _, done = readme_runs
    argv, r = done[line]
    assert "Traceback" not in r["stderr"], f"{shlex.join(argv)}\n{r['stderr'][-3000:]}"
    assert r["rc"] == 0, f"{shlex.join(argv)}\n{r['stderr'][-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_readme_runs_leave_what_they_promise(readme_runs):
    tmp, done = readme_runs
    import torch
    z = torch.load(tmp / "z.pth", weights_only=True)  # encode writes a plain tensor file
    assert torch.is_tensor(z) and z.ndim == 5
    teacher = next(r for line, (_, r) in done.items() if "teacher train" in line)
    assert "teacher data: bigbuckbunny" in teacher["stderr"] and "not on this machine" in teacher["stderr"]
    # Runs that ended cleanly leave no lock file behind.
    assert not list(tmp.glob("runs/**/lab.lock")), list(tmp.glob("runs/**/lab.lock"))


def test_parse_only_and_skipped_lines_say_why():
    for line in LINES:
        if why_not_run(line):
            argv = lab_argv(line)
            assert argv is None or check_parses(argv) is None, line
