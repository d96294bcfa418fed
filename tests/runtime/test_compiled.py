"""torch.compile runtime (lab.runtime.compiled) and the bench's runtime specs: the compiled Wan step gives
eager's output whole-clip and streamed, the mode search keeps a mode only if it matches eager, 'eager'
restores the module's own forward, and bad specs and modes are refused with the valid forms."""

import pytest
import torch

from lab.errors import LabError
from lab.eval.bench import Runtime, fixed_spec, split_runtime
from lab.models import load_decoder
from lab.runtime import set_chunk
from lab.runtime.compiled import choose_compile_mode, compile_decoder, device_modes


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
    assert report["max_abs_err"]["default"] < 2e-5 and not report["rejected"]
    assert set(report["seconds"]) == {"eager", "default"}
    assert report["mode"] == min(report["seconds"], key=report["seconds"].get)
    compile_decoder(dec, "default")  # whichever won, run the compiled step from here on
    assert (dec.decode(z) - eager).abs().max() < 2e-5
    session = dec.stream()
    streamed = torch.cat([session.push(z[:, :, :1]), session.push(z[:, :, 1:3]), session.push(z[:, :, 3:5])], 2)
    assert (streamed - eager).abs().max() < 2e-5
    compile_decoder(dec, "eager")
