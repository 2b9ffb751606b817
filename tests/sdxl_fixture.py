"""A tiny random-weight SDXL-architecture pipeline built from configs and saved like the hub's checkpoints."""
from __future__ import annotations

import os

import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

UNET = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
            cross_attention_dim=64, norm_num_groups=32)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 prediction_type="epsilon", steps_offset=1, timestep_spacing="leading", interpolation_type="linear")


def _tokenizer() -> CLIPTokenizer:
    """A character-level CLIP BPE tokenizer from a vocabulary built here (no download); saved with the pipeline."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]  # byte-level alphabet
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1  # highest ids: EOS pooling by argmax
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _text_config(**kw) -> CLIPTextConfig:
    return CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32, intermediate_size=37,
                          layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=3, vocab_size=1000,
                          hidden_act="gelu", projection_dim=32, **kw)


def build_tiny_sdxl(root: str, seed: int = 0) -> dict:
    """Write base/ (pipeline), dmd2/ (a student UNet file + a LoRA file) under `root`; returns load_world sources."""
    torch.manual_seed(seed)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        sample_size=32, norm_num_groups=32)
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(_text_config()), text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer=_tokenizer(), tokenizer_2=_tokenizer(),
        unet=UNet2DConditionModel(**UNET), scheduler=EulerDiscreteScheduler(**SCHEDULER))
    pipe.save_pretrained(os.path.join(root, "base"))
    torch.manual_seed(seed + 1)
    student = UNet2DConditionModel(**UNET)
    os.makedirs(os.path.join(root, "dmd2"), exist_ok=True)
    torch.save(student.state_dict(), os.path.join(root, "dmd2", "dmd2_sdxl_4step_unet_fp16.bin"))
    _write_lora(pipe.unet, os.path.join(root, "dmd2"), "dmd2_sdxl_4step_lora_fp16.safetensors", seed + 2)
    return {"base": os.path.join(root, "base"), "dmd2": os.path.join(root, "dmd2"),
            "dmd2_lora": os.path.join(root, "dmd2")}


def _write_lora(unet, path, name, seed) -> None:
    """A random (non-zero) LoRA on the attention projections, saved in diffusers' LoRA format."""
    import copy

    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    u = copy.deepcopy(unet)
    u.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                             target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for n, p in u.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    StableDiffusionXLPipeline.save_lora_weights(path, unet_lora_layers=get_peft_model_state_dict(u), weight_name=name)
