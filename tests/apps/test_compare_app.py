"""The compare demo served for real: driven through gradio_client (named API endpoints) and through a
headless Chromium (Playwright): load the page, move the keep slider, see the heatmap and videos update."""

import os
import socket
import time
from pathlib import Path

import torch

torch.set_num_threads(1)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

CHROMIUM = "/usr/bin/chromium"
DECODE_ARGS = dict(teacher="mini-wan", weights="", clip="bbb-128", upload=None, frames=9, short_side=64, extras=[],
                   per_stage="", criterion="independence", operators="keep", decoders=["teacher", "student"],
                   saved="", vmaf=False, memory=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    from lab.cli.app import _apps_module
    port = _free_port()
    demo = _apps_module("compare").launch(port=port, block=False, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(app_url):
    return gradio_client.Client(app_url, verbose=False)


def test_server_binds_loopback_only(app_url):
    assert app_url.startswith("http://127.0.0.1:")


def test_api_lists_every_action(client):
    names = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/load", "/figures", "/decode", "/check_upload"} <= names


def test_decode_endpoint_returns_videos_and_metrics(client):
    import json
    side, diff, table, rows, info, heat, curve, caption = client.predict(**DECODE_ARGS, keep=0.25, stage="up3",
                                                                         api_name="/decode")
    from lab.data.video import probe
    # real | teacher | student, the 64 px columns shown at 128 px (room for their labels)
    assert probe(side)["frames"] == 9 and probe(side)["width"] == 3 * 128
    assert probe(diff)["frames"] == 9
    teacher, student = rows
    assert teacher["kind"] == "teacher" and student["decoder"] == "pruned 0.25 independence"
    assert student["decoder_params"] < teacher["decoder_params"]
    assert 5 < student["psnr"] < 60 and 0 < student["ssim_vs_teacher"] <= 1 and student["fps"] > 0
    assert table["data"][1][0] == "pruned 0.25 independence"
    # only columns with values: no VMAF (off), no memory (off), no error column
    assert table["headers"][:3] == ["decoder", "params (M)", "s / decode"]
    assert not {"VMAF", "peak MB", "error", "kind"} & set(table["headers"])
    assert "**cpu**" in info or "**cuda" in info
    # the figures are redrawn for the student this decode used
    width = _main_width(heat)
    assert _rect_x1(heat) == [round(0.25 * width) - 0.5] and "up3" in json.loads(curve["plot"])["layout"]["title"]["text"]
    assert f"{round(0.25 * width)} of up3.stream's {width} channels" in caption


def _rect_x1(fig) -> list:
    import json
    return [s["x1"] for s in json.loads(fig["plot"])["layout"].get("shapes", []) if s["type"] == "rect"]


def _main_width(fig) -> int:
    """Channels of the group the heatmap's left panel draws (its |correlation| matrix is width x width)."""
    import json
    return len(json.loads(fig["plot"])["data"][0]["z"])


def test_load_endpoint_analyses_once_and_lists_matching_decoders(client):
    from lab.compare import extra_decoders
    from lab.compare.handlers import CACHE
    info, stage, heat, curve, extras, caption = client.predict(
        teacher="mini-wan", weights="", clip="bbb-128", upload=None, frames=9, short_side=64, keep=0.5, per_stage="",
        stage=None, criterion="independence", api_name="/load")
    # Dropdowns come back as updates: their new choices and value.
    assert stage["value"] == "up3" and [c[0] for c in stage["choices"]] == ["up0", "up1", "up2", "up3"]
    assert "Channel analysis cached" in info and "run 1x" in info
    assert all(s.analysis_runs == 1 for s in CACHE._sessions.values())
    session = next(iter(CACHE._sessions.values()))
    assert [c[0] for c in extras["choices"]] == extra_decoders(session.teacher.geometry)
    assert caption.startswith("**How to read the channel figures.**")


def test_figures_endpoint_marks_the_ratio(client):
    import json
    heat, curve, caption = client.predict(teacher="mini-wan", weights="", clip="bbb-128", upload=None, frames=9,
                                          short_side=64, keep=0.25, per_stage="", stage="up2",
                                          criterion="independence", api_name="/figures")
    assert _rect_x1(heat) == [round(0.25 * _main_width(heat)) - 0.5]  # a quarter of up2's residual stream
    assert "up2" in json.loads(curve["plot"])["layout"]["title"]["text"] and "up2.stream" in caption


def test_decode_endpoint_runs_the_chosen_runtime(client):
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/decode"]["parameters"]
    assert "runtime" in [p["parameter_name"] for p in params]
    rows = client.predict(**DECODE_ARGS, keep=0.5, runtime="fused", api_name="/decode")[3]
    assert [r["decoder"] for r in rows] == ["mini-wan@fused", "pruned 0.5 independence@fused"]
    assert rows[0]["psnr_vs_teacher"] > 60  # the fused teacher against its eager decode


def _app_error(client, **fields):
    with pytest.raises(gradio_client.exceptions.AppError) as info:
        client.predict(**{**DECODE_ARGS, **fields}, keep=0.5, api_name="/decode")
    return str(info.value)


def test_fields_do_not_load_or_probe_paths_on_the_server(client, tmp_path):
    # issue 21, item 5: teacher, weights and saved students loaded any path on the server, and their
    # errors told existing from missing paths. Now: one answer for all, and nothing outside is read.
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "config.json").write_text("{}")
    teacher = {_app_error(client, teacher=ref).replace(ref, "REF")
               for ref in ("/etc", str(tmp_path / "secret"), "/no/such/folder", "../../etc")}
    assert len(teacher) == 1, teacher
    weights = {_app_error(client, weights=ref).replace(ref, "REF")
               for ref in ("/etc/passwd", "/etc/no-such-file", str(tmp_path / "secret"), "/proc/self/environ")}
    assert len(weights) == 1, weights
    assert "--allow-downloads" in _app_error(client, weights="Wan-AI/Wan2.1-T2V-1.3B-Diffusers")
    refs = ["/etc", str(tmp_path / "secret"), "/no/such/folder"]
    rows = client.predict(**{**DECODE_ARGS, "decoders": [], "saved": ",".join(refs)}, keep=0.5,
                          api_name="/decode")[3]
    assert len({row["error"].replace(ref, "REF") for row, ref in zip(rows, refs)}) == 1, rows


def test_bad_uploads_get_an_error_and_the_app_keeps_serving(client, tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))  # an mp4 header, then garbage
    with pytest.raises(gradio_client.exceptions.AppError, match="holiday.mp4"):
        client.predict(gradio_client.handle_file(str(bad)), api_name="/check_upload")
    with pytest.raises(gradio_client.exceptions.AppError, match="not a video|could not be decoded"):
        client.predict(**{**DECODE_ARGS, "upload": gradio_client.handle_file(str(bad))}, keep=0.5,
                       api_name="/decode")
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    with pytest.raises(gradio_client.exceptions.AppError, match="not a video"):
        client.predict(gradio_client.handle_file(str(text)), api_name="/check_upload")
    # still serving
    assert client.predict(None, api_name="/check_upload").startswith("No upload")


def _launch_chromium(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])


RECT_X1 = """() => { const p = document.querySelector('#heatmap .js-plotly-plot');
  if (!p || !p.layout) return null;
  const r = (p.layout.shapes || []).filter(s => s.type === 'rect'); return r.length ? r[0].x1 : -1; }"""
MAIN_WIDTH = "() => document.querySelector('#heatmap .js-plotly-plot').data[0].z.length"
VIDEO_SRC = "() => { const v = document.querySelector('#side video'); return v ? v.getAttribute('src') : null; }"
# Points along the top rows of each video (where the labels are burned in): what the browser shows there.
LABELS_COVERED = """(sel) => { const v = document.querySelector(sel + ' video'); const r = v.getBoundingClientRect();
  const covered = [];
  for (let f = 0.01; f < 1; f += 0.02) { for (const y of [r.y + 2, r.y + 0.06 * r.height]) {
    const e = document.elementFromPoint(r.x + f * r.width, y);
    if (e !== v) covered.push([f.toFixed(2), e ? e.tagName + '.' + e.className : null]); } }
  return covered; }"""
# The per-decoder table: its own width and the width of the box it sits in.
TABLE_WIDTHS = """() => { const box = document.querySelector('#table'); const t = box.querySelector('table');
  return [t.getBoundingClientRect().width, box.getBoundingClientRect().width,
          document.documentElement.scrollWidth, document.documentElement.clientWidth]; }"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium "
                                                         "(CI installs it)")
def test_browser_slider_updates_heatmap_and_videos(app_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = _launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1800})
            page.goto(app_url)
            # Page load analyses the teacher and decodes once (default ratio 0.5, stage up3).
            page.wait_for_function(f"({RECT_X1})() !== null && ({RECT_X1})() > 0", timeout=120_000)
            width = page.evaluate(MAIN_WIDTH)
            assert page.evaluate(RECT_X1) == round(0.5 * width) - 0.5
            page.wait_for_function(f"({VIDEO_SRC})() !== null", timeout=120_000)
            first_video = page.evaluate(VIDEO_SRC)
            assert "CPU" in page.locator("#device").inner_text() or "GPU" in page.locator("#device").inner_text()
            # issue 31: nothing of the page sits on the labels burned into the videos, the table fits its
            # box on a 1280 px page, and the figures have a caption
            page.wait_for_function("() => document.querySelector('#diff video')?.getAttribute('src')",
                                   timeout=120_000)
            for video in ("#side", "#diff"):
                assert page.evaluate(LABELS_COVERED, video) == [], video
            table, box, page_width, viewport = page.evaluate(TABLE_WIDTHS)
            assert table <= box + 1 and page_width <= viewport, (table, box, page_width, viewport)
            assert "How to read the channel figures" in page.locator("#caption").inner_text()

            number = page.locator("#keep input[type=number]")
            number.fill("0.25")
            number.press("Tab")  # blur = release: figures, then the student is rebuilt and decoded
            page.wait_for_function(f"({RECT_X1})() === {round(0.25 * width) - 0.5}", timeout=120_000)
            page.wait_for_function(f"({VIDEO_SRC})() !== {first_video!r}", timeout=120_000)
            page.wait_for_function("() => document.querySelector('#table').innerText.includes('pruned 0.25')",
                                   timeout=120_000)
            time.sleep(1.0)  # let the video element paint a frame for the screenshot
            shot = tmp_path / "compare_app.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000

            # A corrupt upload: the page shows why, and the app goes on serving.
            bad = tmp_path / "broken.mp4"
            bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
            page.locator("#upload input[type=file]").set_input_files(str(bad))
            page.get_by_text("broken.mp4 is not a video the demo can read").first.wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "compare_app_bad_upload.png"), full_page=True)

            # Per-stage ratios typed (not submitted), the flash-vaed plan and the fused runtime (the longest
            # label: its row must still wrap within the table), then "Decode and compare": the heatmap follows
            # the ratio the decode used for the stage shown, and the untrained student says so.
            page.locator("#per-stage textarea").fill("up3=0.125")
            operators = page.locator("#operators input")
            operators.fill("flash-vaed")
            operators.press("Enter")
            runtime = page.locator("#runtime input")
            runtime.fill("fused")
            runtime.press("Enter")
            page.locator("#compare").click()
            kept = round(0.125 * width)
            # The progress text names the student too: wait for what only the finished decode writes.
            page.wait_for_function(f"({RECT_X1})() === {kept - 0.5}", timeout=180_000)
            page.wait_for_function("() => document.querySelector('#info').innerText.includes('is untrained.')",
                                   timeout=60_000)
            assert "python -m lab distill" in page.locator("#info").inner_text()
            assert "(untrained)@fused" in page.locator("#table").inner_text().replace("\n", "")
            assert f"{kept} of up3.stream's {width} channels" in page.locator("#caption").inner_text()
            table, box, page_width, viewport = page.evaluate(TABLE_WIDTHS)  # with the longest label yet
            assert table <= box + 1 and page_width <= viewport, (table, box, page_width, viewport)
            for video in ("#side", "#diff"):
                assert page.evaluate(LABELS_COVERED, video) == [], video
            page.screenshot(path=str(tmp_path / "compare_app_flash.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
def test_cli_starts_the_demo_on_loopback(tmp_path):
    """python -m lab app compare --port N serves the page on 127.0.0.1 until stopped."""
    import subprocess
    import sys
    import urllib.request
    port = _free_port()
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path / "tmp")}
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # the app turns analytics off itself
    proc = subprocess.Popen([sys.executable, "-m", "lab", "app", "compare", "--port", str(port)],
                            cwd=Path(__file__).resolve().parents[2], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert body is not None, f"the app did not come up: {proc.poll()=} {proc.stderr.read() if proc.poll() else ''}"
        assert "gradio" in body.lower()
        assert [p.name.startswith("vaed-compare-app-") for p in (tmp_path / "tmp").iterdir()].count(True) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # SIGTERM stops it like Ctrl+C: its temporary folder goes with it
    assert not list((tmp_path / "tmp").glob("vaed-compare-app-*"))
