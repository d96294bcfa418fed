"""python -m lab app: what a page may read is fixed at start (issue 21, items 3 and 5). The servers are
not started here: the app's launch and the dashboard's subprocess are replaced by recorders."""

import contextlib
import io
import types
from pathlib import Path

import pytest

from lab.cli import app as app_cli
from lab.cli import main


def _run(argv):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture
def launched(monkeypatch):
    pytest.importorskip("gradio")
    calls = []
    fake = types.SimpleNamespace(launch=lambda **kw: calls.append(kw))
    monkeypatch.setattr(app_cli, "_apps_module", lambda name: fake)
    return calls


def test_compare_passes_its_models_folders_and_download_choice(launched, tmp_path):
    assert _run(["app", "compare", "--port", "7999"])[0] == 0
    assert launched[-1]["models_dirs"] is None and launched[-1]["allow_downloads"] is False
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    argv = ["app", "compare", "--models-dir", str(tmp_path / "a"), "--models-dir", str(tmp_path / "b"),
            "--allow-downloads"]
    assert _run(argv)[0] == 0
    assert launched[-1]["models_dirs"] == [tmp_path / "a", tmp_path / "b"] and launched[-1]["allow_downloads"]


def test_a_models_folder_that_is_not_there_is_a_one_line_error(launched, tmp_path):
    code, err = _run(["app", "compare", "--models-dir", str(tmp_path / "typo")])
    assert code == 1 and not launched
    assert err.strip().splitlines() == [f"error: --models-dir {tmp_path / 'typo'} is not a folder; pass an existing "
                                        f"folder of saved decoders or weights."]


def test_dashboard_gets_an_absolute_runs_folder(monkeypatch, tmp_path):
    pytest.importorskip("streamlit")
    cmds = []
    monkeypatch.setattr(app_cli, "_run_forwarding_signals", lambda cmd: cmds.append(cmd) or 0)
    monkeypatch.chdir(tmp_path)
    assert _run(["app", "dashboard", "--runs", "runs/distill"])[0] == 0
    assert cmds[0][-2:] == ["--runs", str((tmp_path / "runs" / "distill").resolve())]
    assert Path(cmds[0][-1]).is_absolute()
