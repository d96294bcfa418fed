"""Bad arguments, files and configs through ``python -m lab``, each in its own process: each ends in
one error line that names the problem and the fix, exit code 2 (argparse) or 1 (the command), and no
traceback (tests/cli/cli_batch.py pays the lab's import time once for all of them)."""

import os
import struct
import zlib
from pathlib import Path

import pytest
import torch

from lab import paths

TINY_DECODE = ["decode", "--decoder", "wan2.1-tiny", "--weights", "random"]
TINY_TOML = paths.REPO_ROOT / "configs" / "distill" / "tiny.toml"

# id -> (argv, exit code, text the error line must contain: the problem or the fix)
CASES = {
    "prune --frames 0": (["prune", "--teacher", "wan2.1-tiny", "--weights", "random", "--keep", "0.5",
                          "--frames", "0", "--out", "{tmp}/pruned"], 2, "--frames: must be at least 1"),
    "decode --out EXISTING_DIR": ([*TINY_DECODE, "--latents", "{tmp}/z.pth", "--out", "{tmp}/existing"], 1,
                                  "give a file name"),
    "decode --fps -3": ([*TINY_DECODE, "--latents", "{tmp}/z.pth", "--out", "{tmp}/a.mp4", "--fps", "-3"], 2,
                        "--fps: fps must be a number in (0,"),
    "decode --fps nan": ([*TINY_DECODE, "--latents", "{tmp}/z.pth", "--out", "{tmp}/a.mp4", "--fps", "nan"], 2,
                         "--fps"),
    "decode --fps 0": ([*TINY_DECODE, "--latents", "{tmp}/z.pth", "--out", "{tmp}/a.mp4", "--fps", "0"], 2,
                       "--fps"),
    "decode --device banana": ([*TINY_DECODE, "--latents", "{tmp}/z.pth", "--device", "banana"], 2,
                               "use cpu, cuda or cuda:N"),
    "prune --device banana": (["prune", "--teacher", "wan2.1-tiny", "--keep", "0.5", "--device", "banana",
                               "--out", "{tmp}/pruned"], 2, "unknown device 'banana'"),
    "demo --threads 100000": (["demo", "--quick", "--threads", "100000", "--out", "{tmp}/demo"], 2,
                              "CPU count"),
    "distill threads = 100000": (["distill", "--config", "{tmp}/threads.toml", "--out", "{tmp}/run-threads"], 1,
                                 "threads in the config must be at most"),
    "distill device = banana": (["distill", "--config", "{tmp}/device.toml", "--out", "{tmp}/run-device"], 1,
                                "use cpu, cuda or cuda:N"),
    "ship --rerender a folder without a record": (["ship", "--rerender", "{tmp}/existing"], 1,
                                                  "has no provenance.json"),
    "ship --rerender --weights best": (["ship", "--rerender", "all", "--weights", "best"], 1, "drop --weights"),
    "distill --resume on a non-run": (["distill", "--out", "{tmp}/existing", "--resume"], 1,
                                      "holds no run"),
    "distill --resume read-only": (["distill", "--out", "{tmp}/readonly-run", "--resume"], 1, "is not writable"),
    "lab_decoder.json = [1,2]": ([*TINY_DECODE[:1], "--decoder", "{tmp}/bad-meta", "--latents", "{tmp}/z.pth"], 1,
                                 "re-save the decoder"),
    "invalid config.json": ([*TINY_DECODE[:1], "--decoder", "{tmp}/bad-config", "--latents", "{tmp}/z.pth"], 1,
                            "restore the folder's config.json"),
    "complex latents": ([*TINY_DECODE, "--latents", "{tmp}/z-complex.pth"], 1, "floating point"),
    "int64 latents": ([*TINY_DECODE, "--latents", "{tmp}/z-int.pth"], 1, "floating point"),
    "bool latents": ([*TINY_DECODE, "--latents", "{tmp}/z-bool.pth"], 1, "floating point"),
    "16000x16000 image as video": ([*TINY_DECODE, "--video", "{tmp}/huge.png"], 1, "downscale it"),
    "decode --latents with --teacher": ([*TINY_DECODE, "--latents", "{tmp}/z.pth", "--teacher", "wan2.1-tiny"], 1,
                                        "nothing to encode"),
    "decode a clip with another family's teacher": ([*TINY_DECODE, "--video", "bbb-128", "--frames", "5",
                                                     "--teacher", "ltx-video-tiny"], 1,
                                                    "pair a decoder with its own teacher"),
}


def _huge_png(path: Path, side: int = 16000) -> None:
    """A valid PNG header for a side x side RGB image with a few rows of data: the size check must
    refuse it from the header, before a frame is allocated (the full image would be 768 MB decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress((b"\x00" * (1 + 3 * side)) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def _prepare(tmp: Path) -> None:
    z = torch.randn(1, 16, 2, 4, 4)
    torch.save(z, tmp / "z.pth")
    torch.save(z.to(torch.complex64), tmp / "z-complex.pth")
    torch.save(z.long(), tmp / "z-int.pth")
    torch.save(z > 0, tmp / "z-bool.pth")
    (tmp / "existing").mkdir()
    (tmp / "existing" / "keep.txt").write_text("not a run")
    (tmp / "bad-meta").mkdir()
    (tmp / "bad-meta" / "lab_decoder.json").write_text("[1, 2]")
    (tmp / "bad-config").mkdir()
    (tmp / "bad-config" / "config.json").write_text("{not json")
    toml = TINY_TOML.read_text()
    (tmp / "threads.toml").write_text(toml.replace("threads = 1", "threads = 100000"))
    (tmp / "device.toml").write_text(toml.replace("threads = 1", 'device = "banana"'))
    run = tmp / "readonly-run"
    run.mkdir()
    (run / "store.sqlite").write_bytes(b"")
    (run / "config.json").write_text("{}")
    for p in (run / "store.sqlite", run / "config.json", run):
        p.chmod(0o555)
    _huge_png(tmp / "huge.png")


@pytest.fixture(scope="module")
def results(tmp_path_factory, lab_cli):
    tmp = tmp_path_factory.mktemp("bad-args")
    _prepare(tmp)
    argvs = {name: [a.replace("{tmp}", str(tmp)) for a in argv] for name, (argv, _, _) in CASES.items()}
    done = dict(zip(argvs, lab_cli(list(argvs.values()))))
    yield tmp, done
    (tmp / "readonly-run").chmod(0o755)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_argument_is_one_clear_line(case, results):
    if case == "distill --resume read-only" and os.geteuid() == 0:
        pytest.skip("root can write anywhere; the check is covered in-process in test_resume_refuses_unwritable_run")
    _, done = results
    _, code, expected = CASES[case]
    proc = done[case]
    assert "Traceback" not in proc["stderr"], proc["stderr"]
    errors = [line for line in proc["stderr"].splitlines() if line.startswith("error:") or ": error: " in line]
    assert len(errors) == 1, proc["stderr"]
    assert expected in errors[0], errors[0]
    assert proc["rc"] == code, proc["stderr"]


@pytest.mark.slow
def test_failed_decodes_leave_no_temp_files(results):
    tmp, _ = results
    assert not list(tmp.rglob("*.tmp*")), list(tmp.rglob("*.tmp*"))
    assert [p.name for p in (tmp / "existing").iterdir()] == ["keep.txt"]


def test_resume_refuses_unwritable_run(tmp_path, monkeypatch, capsys):
    # As root (CI containers) chmod does not stop writes, so the check is driven through os.access.
    from lab.cli import distill as distill_cli
    from lab.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "store.sqlite").write_bytes(b"")
    (run / "config.json").write_text("{}")
    monkeypatch.setattr(distill_cli.os, "access", lambda p, mode: Path(p) != run)
    assert main(["distill", "--out", str(run), "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {run} is not writable; copy the run to a writable folder (or fix the permissions) "
                   f"and pass that as --out."]
