"""torch.compile runtime (lab.runtime.compiled) and the bench's runtime specs: the compiled Wan step gives
eager's output whole-clip and streamed, the mode search keeps a mode only if it matches eager (by PSNR)
and reuses its answer, 'eager' restores the module's own forward, CUDA-graph modes are refused for causal
decoders, Dynamo's recompile limit is raised and a hit is an error, MACs are counted eagerly, and bad
specs and modes are refused with the valid forms. Only the slow test compiles with Inductor; the others
swap in stand-in forwards, so they take seconds."""

import pytest
import torch

from lab.errors import LabError
from lab.eval.bench import Runtime, bench, count_macs, fixed_spec, split_runtime
from lab.models import load_decoder
from lab.runtime import compiled, set_chunk
from lab.runtime.compiled import (AUTO_MODES, CUDAGRAPH_MODES, MODES, choose_compile_mode, compile_decoder,
                                  device_modes, raise_recompile_limit, strict_compile)


def test_runtime_specs_parse_and_combine():
    assert split_runtime("wan2.1") == ("wan2.1", None)
    assert split_runtime("wan2.1@chunk4") == ("wan2.1", Runtime(chunk=4))
    assert split_runtime("runs/a@b/flash@fast") == ("runs/a@b/flash", Runtime(chunk="auto"))
    assert split_runtime("ltx-video@compile") == ("ltx-video", Runtime(compile="default"))
    assert split_runtime("wan2.1@chunk2+compile-reduce-overhead") == ("wan2.1", Runtime(2, "reduce-overhead"))
    assert split_runtime("wan2.1@fast+compile-auto")[1].searched
    for bad in ("wan2.1@chunk0", "wan2.1@compile-turbo", "wan2.1@chunk2+chunk4", "wan2.1@quick"):
        with pytest.raises(LabError, match="NAME@compile-MODE"):
            split_runtime(bad)


def test_compile_and_eager_swap_the_forward_without_compiling():
    dec = load_decoder("wan2.1-tiny")
    compile_decoder(dec, "default")  # compilation itself waits for the first decode
    assert dec.compile_mode == "default" and "forward" in vars(dec.vae.decoder)
    assert fixed_spec("wan2.1-tiny", set_chunk(dec, 3)) == "wan2.1-tiny@chunk3+compile-default"
    compile_decoder(dec, "eager")
    assert dec.compile_mode is None and "forward" not in vars(dec.vae.decoder)
    assert fixed_spec("wan2.1-tiny", set_chunk(dec, 1)) == "wan2.1-tiny"
    with pytest.raises(LabError, match="max-autotune-no-cudagraphs"):
        compile_decoder(dec, "fastest")
    assert device_modes(torch.device("cpu")) == ("default", "max-autotune-no-cudagraphs")
    with pytest.raises(LabError, match="eager is always timed"):
        choose_compile_mode(dec, torch.zeros(1, 16, 2, 4, 4), modes=("eager",))


@pytest.mark.slow
def test_mode_search_compiles_the_wan_step_exactly():
    # Compiling even the tiny Wan decoder takes ~1-2 min on 2 CPU cores: one search covers it all.
    dec = set_chunk(load_decoder("wan2.1-tiny"), 2)
    # 5 latent frames in chunks of 2: two shapes to compile (the first frame, a chunk of 2), no partial chunk.
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(0))
    eager = dec.decode(z)
    report = choose_compile_mode(dec, z, modes=("default",), repeats=1)
    assert report["max_abs_err"]["default"] < 2e-5 and report["psnr"]["default"] > 90 and not report["rejected"]
    assert set(report["seconds"]) == {"eager", "default"}
    assert report["mode"] == min(report["seconds"], key=report["seconds"].get)
    compile_decoder(dec, "default")  # whichever won, run the compiled step from here on
    assert (dec.decode(z) - eager).abs().max() < 2e-5
    session = dec.stream()
    streamed = torch.cat([session.push(z[:, :, :1]), session.push(z[:, :, 1:3]), session.push(z[:, :, 3:5])], 2)
    assert (streamed - eager).abs().max() < 2e-5
    compile_decoder(dec, "eager")


def test_cudagraph_modes_are_refused_for_causal_decoders():
    wan, ltx = load_decoder("wan2.1-tiny"), load_decoder("ltx-video-tiny")
    cuda = torch.device("cuda")
    assert device_modes(cuda) == device_modes(cuda, ltx) == MODES
    assert device_modes(cuda, wan) == device_modes("cpu", ltx) == ("default", "max-autotune-no-cudagraphs")
    for mode in CUDAGRAPH_MODES:
        with pytest.raises(LabError, match="feature cache"):
            compile_decoder(wan, mode)
        assert wan.compile_mode is None
    compile_decoder(ltx, "reduce-overhead")  # not causal: allowed (nothing compiles until a decode)
    assert ltx.compile_mode == "reduce-overhead"
    compile_decoder(ltx, "eager")
    with pytest.raises(LabError, match="feature cache"):
        bench(["wan2.1-tiny@compile-max-autotune"], weights="random", frames=5, size=(32, 32), repeats=1,
              memory=False, macs=False)


def test_recompile_limit_is_raised_and_a_hit_is_an_error(monkeypatch):
    cfg = torch._dynamo.config
    monkeypatch.setattr(cfg, "accumulated_recompile_limit", cfg.accumulated_recompile_limit)  # restored after
    monkeypatch.setattr(cfg, "recompile_limit", 8)
    raise_recompile_limit()
    assert cfg.recompile_limit == 64 and cfg.accumulated_recompile_limit >= 512
    monkeypatch.setattr(cfg, "recompile_limit", 100)
    raise_recompile_limit()
    assert cfg.recompile_limit == 100  # never lowered

    # Past the limit Dynamo would run eagerly without a word; under strict_compile it is an error.
    # backend='eager': Dynamo's own cache and limit, no Inductor compilation (milliseconds).
    def step(x):
        return x * 2 + 1

    fn = torch.compile(step, backend="eager", dynamic=False)
    with cfg.patch(recompile_limit=1):
        with strict_compile("step"):
            fn(torch.ones(2))
        with pytest.raises(LabError, match="recompile limit"):
            with strict_compile("step"):
                fn(torch.ones(3))


class _StandIns:
    """Stand-ins for torch.compile'd forwards: 'default' is exact, 'max-autotune-no-cudagraphs' moves one
    output value by 0.1 (high PSNR, max abs error 100x the old tolerance), 'broken' adds noise everywhere."""

    def __init__(self, monkeypatch, broken: str | None = None):
        self.calls = 0
        self.broken = broken
        monkeypatch.setattr(compiled, "_compiled_forwards", self)

    def __call__(self, decoder, mode):
        self.calls += 1
        own = [type(m).forward.__get__(m) for m in compiled._modules(decoder)]
        if mode == self.broken:
            return [lambda *a, f=f, **k: f(*a, **k) + 0.2 * torch.randn_like(f(*a, **k)) for f in own]
        if mode == "max-autotune-no-cudagraphs":
            def nudged(*a, f=own[-1], **k):
                out = f(*a, **k).clone()
                out.view(-1)[0] += 0.1
                return out
            return own[:-1] + [nudged]
        return own


def test_mode_search_accepts_by_psnr_and_reuses_its_answer(monkeypatch):
    stand_ins = _StandIns(monkeypatch, broken="default")
    dec = load_decoder("ltx-video-tiny")
    z = torch.randn(1, 128, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    assert AUTO_MODES == ("default",)
    report = choose_compile_mode(dec, z, modes=("default", "max-autotune-no-cudagraphs", "reduce-overhead"),
                                 repeats=1)
    nudged = report["max_abs_err"]["max-autotune-no-cudagraphs"]
    assert 0.05 < nudged <= 0.1 + 1e-6 and report["psnr"]["max-autotune-no-cudagraphs"] > 60
    assert "max-autotune-no-cudagraphs" in report["seconds"]  # accepted despite the max abs error
    assert report["rejected"]["default"].startswith("PSNR vs eager") and report["psnr"]["default"] < 60
    assert report["rejected"]["reduce-overhead"] == "not available on cpu"
    assert set(report["seconds"]) == {"eager", "max-autotune-no-cudagraphs"} and not report["reused"]
    calls = stand_ins.calls
    again = choose_compile_mode(dec, z, modes=("default", "max-autotune-no-cudagraphs", "reduce-overhead"),
                                repeats=1)
    assert again["reused"] and again["mode"] == report["mode"]
    assert dec.compile_mode == (None if report["mode"] == "eager" else report["mode"])
    assert stand_ins.calls <= calls + 1  # at most the winner's install, no new search
    compile_decoder(dec, "eager")


def test_macs_are_counted_eagerly_and_a_failed_compile_is_timed_eager(monkeypatch):
    class Failing:
        def __call__(self, decoder, mode):
            def boom(*a, **k):
                raise RuntimeError("inductor could not build this")
            return [boom for _ in compiled._modules(decoder)]

    monkeypatch.setattr(compiled, "_compiled_forwards", Failing())
    dec = compile_decoder(load_decoder("wan2.1-tiny"), "default")
    z = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    macs = count_macs(dec, z)  # would raise if it ran the "compiled" forwards
    assert macs == count_macs(load_decoder("wan2.1-tiny"), z) > 0
    assert dec.compile_mode == "default" and "forward" in vars(dec.vae.decoder)  # restored after
    r = bench(["wan2.1-tiny", "wan2.1-tiny@compile"], weights="random", frames=5, size=(32, 32), repeats=1,
              warmup=0, memory=False, macs=True)
    row = r["decoders"][1]
    assert row["compile_mode"] is None and row["max_abs_err"] == 0 and row["macs"] == r["decoders"][0]["macs"]
    assert row["note"].startswith("compile-default failed, timed eager: RuntimeError: inductor could not build")
