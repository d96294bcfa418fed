"""The compare app's free-text fields (teacher, weights, saved students) load only registered names and
what lies in the models folders the app was started with; missing and forbidden get the same answer;
the hub is reached only with --allow-downloads; the app's temporary folders do not outlive it
(issue 21, item 5). Nothing here decodes: refusals happen before any model is loaded."""

import os

import pytest

from lab.compare import handlers
from lab.compare.access import AccessError, ModelAccess
from lab.compare.session import APP_TMP_PREFIX, OWNER_FILE, SessionCache, sweep_stale_tmpdirs


@pytest.fixture
def tree(tmp_path):
    """models/ (the app's folder: a student folder and a weights file) beside outside/ (a secret
    folder and file), with symlinks from models/ leading out."""
    models, outside = tmp_path / "models", tmp_path / "outside"
    (models / "student").mkdir(parents=True)
    (models / "vae.safetensors").write_bytes(b"x")
    (outside / "secret").mkdir(parents=True)
    (outside / "secret.safetensors").write_bytes(b"x")
    (models / "link").symlink_to(outside / "secret")
    (models / "link.safetensors").symlink_to(outside / "secret.safetensors")
    return models, outside


def _same_answer(call, refs):
    """Each ref is refused, with one message whatever the ref (its own name aside)."""
    messages = set()
    for ref in refs:
        with pytest.raises(AccessError) as info:
            call(ref)
        messages.add(str(info.value).replace(f"'{ref}'", "'REF'"))
    assert len(messages) == 1, messages
    return messages.pop()


def test_decoders_are_registered_names_or_folders_inside_the_models_folders(tree, monkeypatch):
    models, outside = tree
    monkeypatch.chdir(models.parent)
    access = ModelAccess.start([models])
    assert access.decoder("mini-wan") == "mini-wan"
    assert access.decoder(str(models / "student")) == str((models / "student").resolve())
    assert access.decoder("student") == str((models / "student").resolve())  # relative to a models folder
    assert access.decoder("models/student") == str((models / "student").resolve())  # relative to the start folder
    message = _same_answer(access.decoder, [
        str(outside / "secret"), "outside/secret", "../outside/secret", str(models / "link"), "link", "/etc", "/",
        str(models / "missing"), "/no/such/folder", "no-such-decoder", "~/", "models/\x00",
        str(models / "vae.safetensors")])
    assert "--models-dir" in message


def test_weights_are_random_or_inside_the_models_folders(tree, monkeypatch):
    models, outside = tree
    monkeypatch.chdir(models.parent)
    access = ModelAccess.start([models])
    assert access.weights("") is None and access.weights(None) is None and access.weights("random") == "random"
    assert access.weights("vae.safetensors") == str((models / "vae.safetensors").resolve())
    assert access.weights(str(models / "student")) == str((models / "student").resolve())
    message = _same_answer(access.weights, [
        str(outside / "secret.safetensors"), "/etc/passwd", "/etc/no-such-file", "link.safetensors",
        "../outside/secret.safetensors", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "outside/secret"])
    assert "--allow-downloads" in message


def test_hub_ids_are_fetched_only_when_downloads_are_allowed(tree, monkeypatch):
    import huggingface_hub
    models, outside = tree
    monkeypatch.chdir(outside.parent)
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, allow_patterns: calls.append((repo_id, allow_patterns)) or "/cache/snap")
    with pytest.raises(AccessError, match="--allow-downloads"):
        ModelAccess.start([models]).weights("org/name")
    access = ModelAccess.start([models], allow_downloads=True)
    assert access.weights("org/name") == "/cache/snap"
    # "outside/secret" exists on disk beside the start folder: as a hub id it is fetched, never read from disk
    assert access.weights("outside/secret") == "/cache/snap"
    assert [c[0] for c in calls] == ["org/name", "outside/secret"]
    assert all(not p.endswith((".bin", ".pt", ".pth", ".ckpt")) for p in calls[0][1])  # never pickles
    with pytest.raises(AccessError):
        access.weights("/etc/passwd")  # paths outside stay refused


def test_without_downloads_the_hub_is_offline(monkeypatch):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(handlers.CACHE, "access", handlers.CACHE.access)
    handlers.configure(allow_downloads=True)
    assert hub.HF_HUB_OFFLINE is False and handlers.CACHE.access.allow_downloads
    access = handlers.configure()
    assert hub.HF_HUB_OFFLINE is True and os.environ["HF_HUB_OFFLINE"] == "1"
    assert not access.allow_downloads and handlers.CACHE.access is access


def test_the_app_session_refuses_missing_and_forbidden_alike(tree, monkeypatch):
    models, outside = tree
    monkeypatch.setattr(handlers.CACHE, "access", ModelAccess.start([models]))
    args = dict(clip="bbb-128", upload=None, frames=9, short_side=64)
    _same_answer(lambda ref: handlers.session(ref, "", **args), ["/etc", "/no/such", str(outside / "secret")])
    _same_answer(lambda ref: handlers.session("mini-wan", ref, **args),
                 ["/etc/passwd", "/etc/nope", str(outside / "secret.safetensors")])
    with pytest.raises(Exception, match="unknown clip"):
        handlers.session("mini-wan", "", "/etc/passwd", None, 9, 64)
    assert not handlers.CACHE._sessions


def test_temporary_folders_are_removed_on_close_and_after_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    cache = SessionCache()
    assert cache.out_root.parent == tmp_path and cache.out_root.name.startswith(APP_TMP_PREFIX)
    assert (cache.out_root / OWNER_FILE).read_text() == str(os.getpid())
    (cache.out_root / "s1" / "call00001").mkdir(parents=True)
    cache.close()
    assert not cache.out_root.exists()

    dead, live, foreign = (tmp_path / f"{APP_TMP_PREFIX}{n}" for n in ("dead", "live", "foreign"))
    for folder, owner in ((dead, 2**22 + 12345), (live, os.getpid()), (foreign, None)):  # above pid_max: gone
        folder.mkdir()
        if owner is not None:
            (folder / OWNER_FILE).write_text(str(owner))
    assert sweep_stale_tmpdirs(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and foreign.exists()


def test_the_app_has_analytics_off_and_sweeps_gradios_cache():
    pytest.importorskip("gradio")
    from lab.cli.app import _apps_module
    app = _apps_module("compare")
    demo = app.build()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert demo.analytics_enabled is False
    assert demo.delete_cache == app.DELETE_CACHE and all(app.DELETE_CACHE)
