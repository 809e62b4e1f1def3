"""Random-weight inpainting pipelines of known architectures, built offline (no hub, no tokenizer download).

``tiny`` is for tests and the CPU overhead benchmark (64 px, a few milliseconds a step); ``sd15`` and
``sdxl`` have the real SD 1.5-inpainting and SDXL-inpainting shapes, for timing on a GPU. The pixels
are noise; the compute is the real thing. The CLIP tokenizer is written from a small local vocabulary
(every character, plus the special tokens): prompts still tokenise to at most 77 ids.
"""

from __future__ import annotations

import json
import string
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import torch

Arch = Literal["tiny", "sd15", "sdxl"]

_CLIP_TEXT_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                    projection_dim=768, hidden_act="quick_gelu")
_CLIP_TEXT_BIGG = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                       projection_dim=1280, hidden_act="gelu")
_VAE_SD = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def write_tokenizer(folder: Path) -> Any:
    """A CLIPTokenizer over single characters (end-of-word forms included), ``model_max_length=77``."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits + ".,'-!?:;()/&"
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_encoder(cls: type, vocab_size: int, **shape: Any) -> Any:
    from transformers import CLIPTextConfig

    config = CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1, **shape)
    return cls(config)


def _components(arch: Arch, tokenizer: Any) -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if arch == "tiny":
        return dict(
            unet=UNet2DConditionModel(
                block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=9, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                attention_head_dim=(2, 4), norm_num_groups=16),
            vae=AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                              down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                              norm_num_groups=16, sample_size=64),
            text_encoder=_text_encoder(CLIPTextModel, len(tokenizer), hidden_size=32, intermediate_size=37,
                                       num_attention_heads=4, num_hidden_layers=2, projection_dim=32),
            tokenizer=tokenizer, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if arch == "sd15":
        return dict(
            unet=UNet2DConditionModel(in_channels=9, sample_size=64, cross_attention_dim=768),
            vae=AutoencoderKL(**_VAE_SD, sample_size=512),
            text_encoder=_text_encoder(CLIPTextModel, 49408, **_CLIP_TEXT_L),
            tokenizer=tokenizer, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return dict(
        unet=UNet2DConditionModel(
            in_channels=9, sample_size=128, block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816),
        vae=AutoencoderKL(**_VAE_SD, sample_size=1024, scaling_factor=0.13025),
        text_encoder=_text_encoder(CLIPTextModel, 49408, **_CLIP_TEXT_L),
        text_encoder_2=_text_encoder(CLIPTextModelWithProjection, 49408, **_CLIP_TEXT_BIGG),
        tokenizer=tokenizer, tokenizer_2=tokenizer, requires_aesthetics_score=False)


def _scheduler(arch: Arch) -> Any:
    """Built outside the device context: schedulers keep their tables on the CPU."""
    from diffusers import EulerDiscreteScheduler, PNDMScheduler

    if arch == "tiny":
        return PNDMScheduler(skip_prk_steps=True, steps_offset=1)
    if arch == "sd15":
        return PNDMScheduler(skip_prk_steps=True, beta_schedule="scaled_linear", beta_start=0.00085,
                             beta_end=0.012, steps_offset=1)
    return EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                  steps_offset=1, timestep_spacing="leading")


def build(arch: Arch, tokenizer_dir: Path, *, seed: int = 0, device: str | None = None) -> Any:
    """A random-weight inpainting pipeline of ``arch`` (weights created on ``device``, fp32)."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline

    torch.manual_seed(seed)
    tokenizer = write_tokenizer(tokenizer_dir)
    with torch.device(device) if device else nullcontext():
        parts = _components(arch, tokenizer)
    cls = StableDiffusionXLInpaintPipeline if arch == "sdxl" else StableDiffusionInpaintPipeline
    return cls(**parts, scheduler=_scheduler(arch))
