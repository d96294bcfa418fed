"""The diffusers VAE facade as a complete VAE: every attribute the Wan and LTX-Video pipelines read,
``encode`` through the teacher's encoder (exactly the teacher VAE's posterior), diffusers' tiling and
slicing (same numbers as the teacher class's own tiled decode), and save/load by folder with the
folded-norm buffers kept in float32 under ``.to(bfloat16)``."""

import re
from pathlib import Path

import diffusers
import pytest
import torch

from lab.errors import ConfigError, LabError
from lab.models import load_decoder
from lab.models.diffusers_compat import (VAE_ATTRIBUTES, DiffusersVAE, LTXDiffusersVAE, WanDiffusersVAE,
                                         as_diffusers_vae, load_diffusers_vae)
from lab.families.ltx.student import LTXStudentAdapter, LTXStudentVAE
from lab.families.wan import WanFoldedRMSNorm, WanStudentAdapter, WanStudentVAE, teacher_widths


def _wan_student(teacher, name="wan-student"):
    """A narrow random student of ``teacher`` (up2/up3 at a quarter width, their RMS norms folded), built
    directly rather than pruned: these tests are about the facade, not about the student's quality."""
    tc = dict(teacher.vae.config)
    widths = {g: max(1, n // 4) for g, n in teacher_widths(tc).items()
              if g.startswith(("up2", "up3"))}
    plain = WanStudentVAE(teacher=teacher.name, teacher_config=tc, widths=widths)
    norms = [n for n, m in plain.named_modules() if n.startswith(("decoder.up_blocks.2", "decoder.up_blocks.3"))
             and type(m).__name__ == "WanRMS_norm"]
    torch.manual_seed(0)
    vae = WanStudentVAE(teacher=teacher.name, teacher_config=tc, widths=widths, folded_norms=norms)
    return WanStudentAdapter(name, vae).eval()


def _ltx_student(teacher, name="ltx-student"):
    tc = dict(teacher.vae.config)
    torch.manual_seed(0)
    vae = LTXStudentVAE(teacher=teacher.name, teacher_config=tc, widths={"up2.stream": 8, "up3.stream": 4})
    return LTXStudentAdapter(name, vae).eval()


@pytest.fixture(scope="module")
def wan():
    teacher = load_decoder("mini-wan")
    return teacher, _wan_student(teacher)


@pytest.fixture(scope="module")
def ltx():
    teacher = load_decoder("ltx-video-tiny")  # random weights: pass it explicitly as the teacher
    return teacher, _ltx_student(teacher)


def _video(frames, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth content (a real clip's statistics matter less than staying inside the decoders' range).
    low = torch.rand(1, 3, frames, size // 8, size // 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=(frames, size, size), mode="trilinear")


def _pipeline_vae_attributes():
    """Every ``self.vae.X`` and ``self.vae.config.X`` the installed diffusers' Wan and LTX pipelines use."""
    root = Path(diffusers.__file__).parent / "pipelines"
    names, config = set(), set()
    for f in [*root.glob("wan/pipeline_*.py"), *root.glob("ltx/pipeline_*.py")]:
        text = f.read_text()
        config |= set(re.findall(r"self\.vae\.config\.(\w+)", text))
        config |= set(re.findall(r"getattr\(self\.vae\.config, \"(\w+)\"", text))
        names |= set(re.findall(r"self\.vae\.(\w+)", text)) - {"config"}
    return names, config


def test_facade_has_every_attribute_the_pipelines_use(wan, ltx):
    facades = {"wan": as_diffusers_vae(wan[1]), "ltx": as_diffusers_vae(ltx[1], teacher=ltx[0])}
    assert type(facades["wan"]) is WanDiffusersVAE and type(facades["ltx"]) is LTXDiffusersVAE
    used, used_config = _pipeline_vae_attributes()
    assert {"encode", "decode", "dtype", "latents_mean", "temperal_downsample"} <= used  # the scan found them
    assert {"z_dim", "latents_mean", "scaling_factor", "timestep_conditioning"} <= used_config
    for family, vae in facades.items():
        listed = VAE_ATTRIBUTES[family]
        for name in used | set(listed["vae"]):  # both facades serve every pipeline's reads
            assert hasattr(vae, name), (family, name)
        for name in used_config | set(listed["config"]):
            assert name in vae.config, (family, name)
    w = facades["wan"]
    assert w.config.z_dim == 16 and w.config.scale_factor_temporal == 4 and w.config.scale_factor_spatial == 8
    # Wan's video-to-video and VACE pipelines derive the scale factors from temperal_downsample.
    assert 2 ** sum(w.temperal_downsample) == 4 and 2 ** len(w.temperal_downsample) == 8
    # The pipelines build float32 tensors from these lists: the same numbers as from the teacher's.
    assert torch.equal(torch.tensor(w.config.latents_mean), torch.tensor(wan[0].vae.config.latents_mean))
    assert w.dtype == torch.float32 and w.device.type == "cpu"
    assert (w.use_tiling, w.use_slicing, w.tile_sample_min_height, w.tile_sample_stride_width) == \
        (False, False, 256, 192)  # AutoencoderKLWan's defaults
    x = facades["ltx"]
    assert (x.tile_sample_min_width, x.tile_sample_stride_height, x.tile_sample_min_num_frames) == (512, 448, 16)
    assert x.spatial_compression_ratio == 32 and x.temporal_compression_ratio == 8
    assert x.config.timestep_conditioning is False and x.latents_std.shape == (128,)


def test_encode_is_the_teachers_encode(wan):
    teacher, student = wan
    x = _video(5, 32)
    with torch.no_grad():
        ref = teacher.vae.encode(x).latent_dist
        vae = as_diffusers_vae(student)  # no teacher given: loads the recorded one ("mini-wan") on first encode
        assert vae.config.teacher == "mini-wan" and vae.teacher_vae is None
        out = vae.encode(x)
        assert torch.equal(out.latent_dist.mean, ref.mean) and torch.equal(out.latent_dist.logvar, ref.logvar)
        assert vae.teacher_vae.decoder is None  # encode-only copy: the student decodes
        (post,) = vae.encode(x, return_dict=False)
        g = torch.Generator().manual_seed(3)
        assert torch.equal(post.sample(g), ref.sample(torch.Generator().manual_seed(3)))
        # An explicit teacher (the pipeline's own VAE) is shared, not copied.
        shared = as_diffusers_vae(student, teacher=teacher.vae)
        assert shared.teacher_vae is teacher.vae
        assert torch.equal(shared.encode(x).latent_dist.mean, ref.mean)
        # The reconstruction path is the teacher's encoder then the student's decoder.
        rec = shared(x).sample
        assert torch.allclose(rec, student.decode(student.normalize(ref.mode())), atol=1e-5)
    with pytest.raises(LabError, match="must be a diffusers AutoencoderKLWan"):
        as_diffusers_vae(student, teacher=load_decoder("ltx-video-tiny").vae)


def test_lightweight_decoder_encode_keeps_the_pipelines_normalisation(wan):
    """A decoder that takes normalized latents (identity config) gets the teacher's posterior mapped so that
    the pipeline's (raw - mean) / std is the teacher's normalized latent."""
    teacher, _ = wan
    light = load_decoder("tae-192-wan", weights="random") if "tae-192-wan" in _names() else None
    if light is None:
        pytest.skip("no lightweight Wan-latent decoder registered")
    vae = as_diffusers_vae(light, teacher=teacher)
    x = _video(5, 32)
    with torch.no_grad():
        post = vae.encode(x).latent_dist
        expected = teacher.normalize(teacher.vae.encode(x).latent_dist.mode())
    got = (post.mode() - vae.latents_mean.view(1, -1, 1, 1, 1)) / vae.latents_std.view(1, -1, 1, 1, 1)
    assert torch.allclose(got, expected, atol=1e-5)


def _names():
    from lab.models import list_entries
    return {e.name for e in list_entries()}


def test_tiled_decode_is_diffusers_tiling(wan):
    """On the teacher, the facade's tiles give the numbers of the diffusers class's own tiled decode; on a
    student, tiles only trigger above the tile size and stay close to the untiled decode."""
    teacher, student = wan
    z = teacher.denormalize(torch.randn(1, 16, 2, 6, 6, generator=torch.Generator().manual_seed(1)))
    facade = as_diffusers_vae(teacher)
    facade.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=24,
                         tile_sample_stride_width=24)
    assert facade.use_tiling and facade.tile_sample_stride_height == 24
    teacher.vae.enable_tiling(32, 32, 24, 24)
    try:
        with torch.no_grad():
            native = teacher.vae.decode(z).sample
    finally:
        teacher.vae.disable_tiling()
    assert torch.allclose(facade.decode(z).sample, native, atol=1e-5)

    vae = as_diffusers_vae(student)
    whole = vae.decode(z).sample
    vae.enable_tiling(32, 32, 24, 24)
    tiled = vae.decode(z).sample
    assert tiled.shape == whole.shape == (1, 3, 5, 48, 48)
    # Seams: a random student on 4-latent tiles is far from its untiled decode, but not unrelated to it
    # (scripts/bench_vae_tiling.py measures a pruned student at realistic tile sizes).
    assert not torch.equal(tiled, whole) and (tiled - whole).abs().mean() < 0.25
    one_tile = z[..., :4, :4]  # no larger than a tile: decoded whole
    assert torch.allclose(vae.decode(one_tile).sample, student.decode(student.normalize(one_tile)), atol=1e-5)
    vae.disable_tiling()
    assert torch.equal(vae.decode(z).sample, whole)
    with pytest.raises(ConfigError, match="stride <= size"):
        vae.enable_tiling(32, 32, 40, 40)


def test_ltx_tiles_and_frame_windows_are_diffusers(ltx):
    """LTX-Video: spatial tiles, and framewise (temporal) windows, against AutoencoderKLLTXVideo's own."""
    teacher, _ = ltx
    z = torch.randn(1, 128, 3, 3, 3, generator=torch.Generator().manual_seed(2))
    facade = as_diffusers_vae(teacher)
    facade.enable_tiling(64, 64, 8, 32, 32, 8)
    teacher.vae.enable_tiling(64, 64, 8, 32, 32, 8)
    try:
        with torch.no_grad():
            # diffusers' LTX decode does not clamp; the facade does (its contract: video in [-1, 1]).
            native = teacher.vae.decode(z).sample.clamp(-1, 1)
            assert torch.allclose(facade.decode(z).sample, native, atol=1e-5)
            facade.disable_tiling()
            teacher.vae.disable_tiling()
            facade.use_framewise_decoding = teacher.vae.use_framewise_decoding = True
            native = teacher.vae.decode(z).sample.clamp(-1, 1)
            assert torch.allclose(facade.decode(z).sample, native, atol=1e-5)
    finally:
        teacher.vae.disable_tiling()
        teacher.vae.use_framewise_decoding = False


def test_slicing_decodes_one_sample_at_a_time(wan):
    _, student = wan
    vae = as_diffusers_vae(student)
    z = student.denormalize(torch.randn(2, 16, 2, 4, 4, generator=torch.Generator().manual_seed(4)))
    batched = vae.decode(z).sample
    vae.enable_slicing()
    assert vae.use_slicing
    sliced = vae.decode(z).sample
    assert torch.allclose(sliced, batched, atol=1e-4)  # batch size changes the float summation order only
    assert torch.allclose(sliced[1:], vae.decode(z[1:]).sample, atol=0)
    vae.disable_slicing()
    assert not vae.use_slicing


def test_save_load_round_trip_and_dtypes(wan, tmp_path):
    teacher, student = wan
    vae = as_diffusers_vae(student)
    z = student.denormalize(torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(5)))
    ref = vae.decode(z).sample
    vae.save_pretrained(tmp_path / "best")
    for loaded in (DiffusersVAE.from_pretrained(tmp_path / "best"), load_diffusers_vae(tmp_path / "best")):
        assert type(loaded) is WanDiffusersVAE and loaded.config.teacher == "mini-wan"
        assert torch.equal(loaded.decode(z).sample, ref)
    for loaded in (WanDiffusersVAE.from_pretrained(str(tmp_path / "best")),
                   DiffusersVAE.from_pretrained(tmp_path, subfolder="best")):
        assert type(loaded) is WanDiffusersVAE and loaded.config.decoder_name == "wan-student"
    assert type(load_decoder(str(tmp_path / "best"))) is WanStudentAdapter  # still a plain lab decoder folder
    with pytest.raises(LabError, match="WanDiffusersVAE"):
        LTXDiffusersVAE.from_pretrained(tmp_path / "best")
    with pytest.raises(ConfigError, match="does not take"):
        DiffusersVAE.from_pretrained(tmp_path / "best", variant="fp16")

    # bfloat16: weights narrow, the folded norms' quadratic forms stay float32 (they cancel large terms).
    half = load_diffusers_vae(tmp_path / "best", dtype=torch.bfloat16)
    fresh = DiffusersVAE.from_pretrained(tmp_path / "best")  # cast below: the fixture's student stays float32
    for cast in (half, fresh.to(torch.bfloat16), fresh.to("cpu"),
                 DiffusersVAE.from_pretrained(tmp_path / "best", torch_dtype=torch.bfloat16)):
        norms = [m for m in cast.modules() if isinstance(m, WanFoldedRMSNorm)]
        assert norms and all(m.quad.dtype == m.lin.dtype == m.const.dtype == torch.float32 for m in norms)
        assert all(m.gamma.dtype == torch.bfloat16 for m in norms) and cast.dtype == torch.bfloat16
    out = half.decode(z[:, :, :1].to(torch.bfloat16)).sample
    assert out.dtype == torch.bfloat16 and (out.float() - ref[:, :, :1]).abs().mean() < 0.05
    # A teacher loaded after the cast follows the facade's dtype, so the pipeline's vae.dtype input encodes.
    x = _video(1, 16).to(torch.bfloat16)
    assert half.encode(x).latent_dist.mean.dtype == torch.bfloat16
    with pytest.raises(LabError, match="move one of them"):
        as_diffusers_vae(half.decoder, teacher=teacher.vae)  # float32 teacher, bfloat16 student
    # load_diffusers_vae with a teacher VAE and no dtype loads the student in the teacher's.
    follows = load_diffusers_vae(tmp_path / "best", teacher=half.teacher_vae)
    assert follows.dtype == torch.bfloat16 and follows.teacher_vae is half.teacher_vae


def test_pipeline_save_and_load_keeps_the_student(wan, tmp_path):
    """A pipeline saved with the facade as its VAE records the facade's class (model_index.json names the
    module), and diffusers' own DiffusionPipeline.from_pretrained loads it back through from_pretrained."""
    from diffusers import DiffusionPipeline

    from lab.families.wan.pipeline import tiny_wan_pipeline
    _, student = wan
    pipe = tiny_wan_pipeline(as_diffusers_vae(student))
    pipe.save_pretrained(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "vae" / "lab_decoder.json").is_file()
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe", text_encoder=None, tokenizer=None,
                                               dtype=torch.bfloat16)
    assert type(loaded.vae) is WanDiffusersVAE and loaded.vae.dtype == torch.bfloat16
    assert {m.quad.dtype for m in loaded.vae.modules() if isinstance(m, WanFoldedRMSNorm)} == {torch.float32}
    z = student.denormalize(torch.randn(1, 16, 1, 4, 4, generator=torch.Generator().manual_seed(6)))
    ref = pipe.vae.decode(z).sample
    assert (loaded.vae.decode(z.to(torch.bfloat16)).sample.float() - ref).abs().mean() < 0.05
    with pytest.raises(ConfigError, match="does not take quantization_config"):
        DiffusersVAE.from_pretrained(tmp_path / "pipe" / "vae", quantization_config={"bits": 4})
