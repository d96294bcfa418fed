"""The main job's HTML report: one self-contained file (plotly.js inlined once, no network URLs), with
the results tables, the figures and the side-by-side video next to it."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from lab.eval.evaluate import retention_text
from lab.files import atomic_write_text


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return str(v) if not math.isfinite(v) else f"{v:.{digits}g}"
    return html.escape(str(v))


def html_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """columns: (key, header). Missing values show as '-'."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k, _ in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_div(fig) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.note{color:#666}
.warn{background:#fff4e0;border-left:4px solid #f0a020;padding:0.5em 1em}"""


def comparison_text(q: dict) -> str:
    """What the baseline comparison measured, in one paragraph of plain text (the report and the CLI
    print it): PSNR vs the teacher's decode before training, each margin, and a loss named as a loss."""
    before = q["psnr_vs_teacher_before_training"]
    rand = before["random"]
    vs = {v["baseline"].split(" ")[0]: v for v in q["independence_vs_baselines"]}  # magnitude, random
    n = len(rand["seeds"])
    lost = [{"magnitude": "magnitude", "random": "the random mean"}[k] for k, v in vs.items() if not v["independence_wins"]]
    verdict = ("Independence does not beat " + " or ".join(lost) if lost
               else "Independence beats magnitude and the random mean")
    return (f"Channel selection before training, all at the same widths (PSNR against the teacher's decode of "
            f"the held-out clip): independence {before['independence']:.2f} dB; magnitude "
            f"{before['magnitude']:.2f} dB ({_margin(vs['magnitude'])}); random over {n} seeds "
            f"{rand['mean']:.2f} dB mean, {rand['min']:.2f} to {rand['max']:.2f} dB min to max "
            f"({_margin(vs['random'], ' the mean')}; above {q['random_seeds_beaten']} of {n} seeds). {verdict}.")


def speed_text(b: dict) -> str:
    """The final student's speedup over the teacher on each runtime the bench ran both on, in one sentence (the
    report and the CLI print it; empty for a results.json from before the bench recorded it)."""
    sp = b.get("student_speedup")
    if not sp:
        return ""
    text = f"The final student decodes {sp['eager']:.2f}x as fast as the teacher, both as diffusers runs them (eager)"
    if "fused" in sp:
        text += f"; {sp['fused']:.2f}x with both on the lab's fused runtime, as lab decode runs them on {b['device']}"
    return text + "."


def _margin(v: dict, what: str = "") -> str:
    d = v["margin_db"]
    return (f"independence wins by {d:.2f} dB{' over' + what if what else ''}" if v["independence_wins"]
            else f"independence loses by {-d:.2f} dB{' to' + what if what else ''}")


def write_report(path: Path, results: dict, figures: dict) -> Path:
    """Write the report to ``path`` atomically. ``figures``: section title -> plotly figure."""
    from plotly.offline import get_plotlyjs  # deferred: plotly takes a second to import; comparison_text needs none

    r = results
    parts = [f"<h1>VAED Lab main job: {html.escape(r['teacher']['name'])}</h1>",
             f"<p class=note>{'quick setting, ' if r['settings']['quick'] else ''}wall time "
             f"{r['wall_seconds']:.1f} s, {html.escape(r['created'])}. Calibration clips: "
             f"{html.escape(', '.join(r['clips']['calibration']))}; held-out clip: "
             f"{html.escape(r['clips']['heldout_note'])}.</p>"]
    if r["distill"]["status"] != "ok":
        parts.append(f"<p class=warn>Distillation did not run: {html.escape(r['distill'].get('reason', ''))}. "
                     f"The 'student' rows are the pruned and swapped student before training.</p>")
    if not r["teacher"]["trained_weights"]:
        parts.append("<p class=warn>The teacher's trained weights were missing: it ran at random init, so "
                     "the quality numbers mean nothing.</p>")
    q = r["quality"]
    ev = r["eval"]
    parts += ["<h2>Quality on the held-out clip</h2>",
              f"<p>Retention of the final student, {html.escape(q['final_label'])} (PSNR student / teacher vs the "
              f"real clip): <b>{html.escape(retention_text(q))}</b>.</p>" if q.get("retention") is not None else "",
              f"<p{'' if q['independence_beats_baselines'] else ' class=warn'}>"
              f"{html.escape(comparison_text(q))}</p>"]
    labels = ev.get("metric_labels") or {}
    metric_cols = [(m, labels.get(m, m)) for m in ev["metrics"]]
    rows = []
    for row in ev["decoders"]:
        rows.append({"decoder": row["decoder"], "params": row["decoder_params"],
                     **{f"c_{k}": v for k, v in row["vs_clip"].items()},
                     **{f"t_{k}": v for k, v in row.get("vs_teacher", {}).items()},
                     "retention": row.get("retention"), "drop": row.get("psnr_drop_db")})
    cols = [("decoder", "decoder"), ("params", "decoder params")]
    cols += [(f"c_{k}", f"{h} vs clip") for k, h in metric_cols]
    cols += [(f"t_{k}", f"{h} vs teacher") for k, h in metric_cols]
    parts.append(html_table(rows, cols + [("retention", "retention (PSNR ratio)"),
                                          ("drop", "PSNR drop vs teacher (dB)")]))
    if ev.get("vmaf_note"):
        parts.append(f"<p class=note>{html.escape(ev['vmaf_note'])}</p>")
    video = r["outputs"].get("side_by_side")
    if video:
        rel = os.path.relpath(video, path.parent)
        parts.append(f"<h3>real | teacher | student</h3><video src='{html.escape(rel)}' controls loop muted "
                     f"style='max-width:100%'></video>")
    b = r["bench"]
    parts += ["<h2>Decode speed</h2>",
              f"<p class=note>{html.escape(b['device'])} {html.escape(b['dtype'])}, {b['frames']} frames at "
              f"{b['size'][0]}x{b['size'][1]}, {b['threads']} torch thread(s), median of {b['repeats']} interleaved "
              f"repeats after warm-up, all in one process: compare the ratios, not the absolute times.</p>",
              html_table(b["decoders"], [("label", "decoder"), ("seconds", "median s"), ("fps", "frames/s"),
                                         ("speedup", "speedup"), ("decoder_params", "params"), ("macs", "MACs"),
                                         ("peak_mem_bytes", "peak RSS bytes")])]
    speed = speed_text(b)
    if speed:
        parts.append(f"<p>{html.escape(speed)}</p>")
    parts += ["<h2>Steps</h2>", html_table([{"step": k, **v} for k, v in r["steps"].items()],
                                           [("step", "step"), ("status", "status"), ("seconds", "seconds")])]
    for title, fig in figures.items():
        parts += [f"<h2>{html.escape(title)}</h2>", _figure_div(fig)]
    doc = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>VAED Lab report</title>"
           f"<style>{_STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
           + "\n".join(parts) + "</body></html>")
    return atomic_write_text(path, doc)
