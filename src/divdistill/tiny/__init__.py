"""The tiny world: a pixel-space text-to-image toy that stands in for SDXL on 2 CPU cores."""
from .text import VOCAB, TextEncoder, Tokenizer, parse_prompt
from .world import (COLOR_NAMES, FACTORS, PRETRAIN_SHAPES, SHAPES, STYLES, Scenes, sample_scenes,
                    scenes_for_prompt)

__all__ = ["VOCAB", "TextEncoder", "Tokenizer", "parse_prompt", "COLOR_NAMES", "FACTORS", "PRETRAIN_SHAPES",
           "SHAPES", "STYLES", "Scenes", "sample_scenes", "scenes_for_prompt"]
