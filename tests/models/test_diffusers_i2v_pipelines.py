"""A lab student as ``pipe.vae`` in diffusers' own image-to-video pipelines (WanImageToVideoPipeline with a
tiny CLIP image encoder, LTXImageToVideoPipeline), built offline from tiny random transformers with prompt
embeddings passed directly (no text encoder or tokenizer needed). The pipelines encode the conditioning
image with ``vae.encode``: through the facade that is the teacher's encoder, so the denoised latents are
exactly the teacher pipeline's, and the video is the student's decode of them, with tiling on or off."""

import numpy as np
import pytest
import torch
from diffusers import (FlowMatchEulerDiscreteScheduler, LTXImageToVideoPipeline, LTXVideoTransformer3DModel,
                       WanImageToVideoPipeline, WanTransformer3DModel)
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

from lab.models import load_decoder
from lab.models.diffusers_compat import DiffusersVAE, as_diffusers_vae
from lab.families.ltx.student import LTXStudentAdapter, LTXStudentVAE
from lab.families.wan import WanStudentAdapter, WanStudentVAE, teacher_widths


def _image(size, seed=0):
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((size, size), Image.BILINEAR)


def _frames(pipe, output_type, **kw):
    return pipe(**kw, output_type=output_type, generator=torch.Generator().manual_seed(0)).frames


def _as_pipeline_output(video):
    """A decoder's [-1, 1] NCTHW video as the pipelines' output_type='pt' frames (N, T, C, H, W) in [0, 1]."""
    return ((video + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4)


# ----- Wan 2.1 image-to-video -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wan():
    teacher = load_decoder("mini-wan")
    tc = dict(teacher.vae.config)
    widths = {g: max(1, n // 4) for g, n in teacher_widths(tc).items() if g.startswith(("up2", "up3"))}
    torch.manual_seed(0)
    student = WanStudentAdapter("wan-student", WanStudentVAE(teacher="mini-wan", teacher_config=tc, widths=widths))
    return teacher, student.eval()


def _wan_i2v(vae):
    """WanImageToVideoPipeline as Wan 2.1 I2V has it (a CLIP image encoder feeding the transformer's image
    cross-attention), at test size."""
    torch.manual_seed(0)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, projection_dim=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        image_size=32, patch_size=8))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    z = vae.config.z_dim
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=2 * z + 4, out_channels=z,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=1, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, image_dim=16)
    pipe = WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer,
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), image_encoder=clip,
                                   image_processor=processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_wan_image_to_video_with_student_vae(wan):
    teacher, student = wan
    pipe = _wan_i2v(teacher.vae)  # the teacher's own AutoencoderKLWan, as a user's pipeline has it
    kw = dict(image=_image(48), prompt_embeds=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1)),
              guidance_scale=1.0, num_frames=5, height=48, width=48, num_inference_steps=2)
    latents = _frames(pipe, "latent", **kw)  # normalized, as lab decoders take them

    pipe.vae = as_diffusers_vae(student, teacher=pipe.vae)
    assert isinstance(pipe.vae, DiffusersVAE)
    # Same conditioning latents (the teacher's encode) -> the same denoised latents, decoded by the student.
    assert torch.equal(_frames(pipe, "latent", **kw), latents)
    video = _frames(pipe, "pt", **kw)
    assert video.shape == (1, 5, 3, 48, 48)
    assert torch.allclose(video, _as_pipeline_output(student.decode(latents)), atol=1e-5)

    # Tiling on: the conditioning image is encoded in tiles by the teacher and the video decoded in tiles.
    teacher.vae.enable_tiling(32, 32, 24, 24)
    try:
        tiled_latents = _frames(_wan_i2v(teacher.vae), "latent", **kw)
    finally:
        teacher.vae.disable_tiling()
    pipe.vae.enable_tiling(32, 32, 24, 24)
    tiled = _frames(pipe, "pt", **kw)
    raw = student.denormalize(tiled_latents)
    assert torch.allclose(tiled, _as_pipeline_output(pipe.vae.decode(raw).sample), atol=1e-5)
    assert 0 < (tiled - video).abs().mean() < 0.15  # seams and a tiled conditioning encode: close, not equal


# ----- LTX-Video image-to-video ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ltx():
    teacher = load_decoder("ltx-video-tiny")
    torch.manual_seed(0)
    vae = LTXStudentVAE(teacher=teacher.name, teacher_config=dict(teacher.vae.config),
                        widths={"up2.stream": 8, "up3.stream": 4})
    return teacher, LTXStudentAdapter("ltx-student", vae).eval()


def _ltx_i2v(vae):
    c = vae.config.latent_channels if hasattr(vae.config, "latent_channels") else vae.config.z_dim
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(in_channels=c, out_channels=c, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    pipe = LTXImageToVideoPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                                   scheduler=FlowMatchEulerDiscreteScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_ltx_image_to_video_with_student_vae(ltx):
    teacher, student = ltx  # random tiny teacher: passed explicitly (loading it by name would re-draw its weights)
    pipe = _ltx_i2v(teacher.vae)
    size, frames = 96, 9
    kw = dict(image=_image(size), prompt_embeds=torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(1)),
              prompt_attention_mask=torch.ones(1, 8, dtype=torch.long), guidance_scale=1.0, num_frames=frames,
              height=size, width=size, num_inference_steps=2)
    packed = _frames(pipe, "latent", **kw)  # LTX returns packed (N, T*H*W, C) normalized latents
    t, h = (frames - 1) // 8 + 1, size // 32
    latents = pipe._unpack_latents(packed, t, h, h, 1, 1)

    pipe.vae = as_diffusers_vae(student, teacher=teacher)
    # LTX samples the conditioning posterior with the pipeline's generator: the same draw through the facade.
    assert torch.equal(_frames(pipe, "latent", **kw), packed)
    video = _frames(pipe, "pt", **kw)
    assert video.shape == (1, frames, 3, size, size)
    assert torch.allclose(video, _as_pipeline_output(student.decode(latents)), atol=1e-5)

    pipe.vae.enable_tiling(64, 64, None, 32, 32)  # 3x3 latents in tiles of 2 with a 1-latent overlap
    teacher.vae.enable_tiling(64, 64, None, 32, 32)
    try:
        tiled_packed = _frames(_ltx_i2v(teacher.vae), "latent", **kw)
    finally:
        teacher.vae.disable_tiling()
    tiled = _frames(pipe, "pt", **kw)
    raw = student.denormalize(pipe._unpack_latents(tiled_packed, t, h, h, 1, 1))
    assert torch.allclose(tiled, _as_pipeline_output(pipe.vae.decode(raw).sample), atol=1e-5)
