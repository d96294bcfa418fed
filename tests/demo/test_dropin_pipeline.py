"""Drop-in use: a lab decoder replaces ``pipe.vae`` in diffusers' own WanPipeline and LTXPipeline,
built offline from tiny random transformers (prompt embeddings passed directly, so no text encoder
or tokenizer is needed), and the pipeline's video equals the lab decoder's decode of its latents."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

from lab.models import load_decoder
from lab.families.wan.pipeline import tiny_wan_pipeline
from lab.models.diffusers_compat import DiffusersVAE, as_diffusers_vae


def _wan_pipe(vae):
    return tiny_wan_pipeline(vae, num_layers=2)


def _run(pipe, output_type, **kw):
    return pipe(**kw, output_type=output_type, generator=torch.Generator().manual_seed(0)).frames


@pytest.fixture(scope="module")
def pruned_student():
    from lab.prune import prune
    teacher = load_decoder("mini-wan")
    student, _ = prune(teacher, "flash-vaed", "independence", frames=5, size=(48, 48),
                       operators="flash-vaed")
    return teacher, student


def test_wan_pipeline_with_student_vae(pruned_student):
    teacher, student = pruned_student
    pipe = _wan_pipe(teacher.vae)  # the teacher's own AutoencoderKLWan, as a user's pipeline has it
    kw = dict(prompt_embeds=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1)), guidance_scale=1.0,
              num_frames=9, height=64, width=64, num_inference_steps=2)
    latents = _run(pipe, "latent", **kw)  # normalized latents, as lab decoders take them
    with_teacher = _run(pipe, "pt", **kw)
    pipe.vae = as_diffusers_vae(student)
    assert isinstance(pipe.vae, DiffusersVAE) and pipe.vae.dtype == torch.float32
    with_student = _run(pipe, "pt", **kw)
    assert with_student.shape == with_teacher.shape == (1, 9, 3, 64, 64)
    # The pipeline denormalises with the facade's config and decodes: the student's own decode.
    expected = ((student.decode(latents) + 1) / 2).permute(0, 2, 1, 3, 4)
    assert torch.allclose(with_student, expected, atol=1e-5)
    assert torch.allclose(with_teacher, ((teacher.decode(latents) + 1) / 2).permute(0, 2, 1, 3, 4), atol=1e-5)
    # A different, smaller decoder: close to the teacher but not the same video.
    assert 0 < (with_student - with_teacher).abs().mean() < 0.25


def test_ltx_pipeline_with_lab_decoder():
    teacher = load_decoder("ltx-video-tiny")
    c = teacher.geometry.channels
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=c, out_channels=c, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    pipe = LTXPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=teacher.vae,
                       scheduler=FlowMatchEulerDiscreteScheduler())
    pipe.set_progress_bar_config(disable=True)
    kw = dict(prompt_embeds=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1)),
              prompt_attention_mask=torch.ones(1, 8, dtype=torch.long), guidance_scale=1.0, num_frames=9,
              height=64, width=64, num_inference_steps=2)
    native = _run(pipe, "pt", **kw)
    pipe.vae = as_diffusers_vae(teacher)  # the lab adapter behind the facade: same numbers as the native VAE
    assert pipe.vae.config.timestep_conditioning is False
    assert pipe.vae.latents_mean.shape == (c,) and pipe.vae.spatial_compression_ratio == 32
    assert torch.allclose(_run(pipe, "pt", **kw), native, atol=1e-6)


def test_facade_decode_contract(pruned_student):
    _, student = pruned_student
    vae = as_diffusers_vae(student)
    raw = student.denormalize(torch.randn(1, 16, 2, 4, 4))
    out = vae.decode(raw)
    assert torch.equal(out.sample, vae.decode(raw, return_dict=False)[0])
    assert torch.allclose(out.sample, student.decode(student.normalize(raw)), atol=1e-5)
    assert vae.config.z_dim == 16 and vae.config.scale_factor_temporal == 4 and vae.config.scale_factor_spatial == 8
    with pytest.raises(Exception, match="not timestep-conditioned"):
        vae.decode(raw, torch.zeros(1))
    with pytest.raises(Exception, match="lab decoder"):
        as_diffusers_vae(torch.nn.Linear(2, 2))
