"""python -m lab search: the operator search as a command; its plan feeds prune --operators."""

import json

from lab.cli import main
from lab.models import load_decoder


def test_search_cli_prints_a_plan_prune_accepts(tmp_path, capsys):
    rc = main(["search", "--decoder", "wan2.1-tiny", "--weights", "random", "--frames", "5", "--size", "32x32",
               "--device", "cpu", "--budget", "0", "--candidates", "keep,conv2d", "--stages", "up3",
               "--repeats", "1", "--threads", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    rows = [t for t in out["trials"] if t["stage"] == "up3"]
    assert {t["operator"] for t in rows} == {"keep", "conv2d"} and all(t["accepted"] for t in rows)
    fastest = min(rows, key=lambda t: t["stage_seconds"])["operator"]
    assert out["plan"]["up3"] == fastest
    assert out["operators"] == ("keep" if fastest == "keep" else "up3=conv2d")
    assert out["latents_shape"] == [1, 16, 2, 4, 4]
    rc = main(["prune", "--teacher", "wan2.1-tiny", "--keep", "up3=0.5", "--criterion", "random",
               "--operators", out["operators"], "--frames", "5", "--out", str(tmp_path / "st"), "--json"])
    assert rc == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["decoder_params"] == load_decoder(str(tmp_path / "st")).decoder_params()


def test_search_cli_budget_and_errors(capsys):
    # An impossible budget keeps every stage as it is.
    rc = main(["search", "--decoder", "ltx-video-tiny", "--frames", "9", "--size", "64x64", "--budget", "1000",
               "--candidates", "keep,conv2d", "--stages", "up3", "--repeats", "1", "--threads", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["plan"]["up3"] == "keep" and out["operators"] == "keep", out
    rc = main(["search", "--decoder", "wan2.1-tiny", "--candidates", "keep,nope", "--frames", "5", "--size",
               "32x32", "--json"])
    assert rc == 1 and "unknown operator" in json.loads(capsys.readouterr().out)["error"]
    rc = main(["search", "--decoder", "wan2.1-tiny", "--stages", "up9", "--frames", "5", "--size", "32x32", "--json"])
    assert rc == 1 and "up9" in json.loads(capsys.readouterr().out)["error"]
