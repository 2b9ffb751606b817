"""The tiny world's text side: a word-level tokenizer and a small transformer encoder (tiny analogue of SDXL's CLIP)."""
from __future__ import annotations

import json
import os

import torch
from torch import nn

from .world import PROMPT_WORDS, parse_prompt  # noqa: F401 (parse_prompt re-exported: text reads prompts)

PAD, BOS = "<pad>", "<bos>"
VOCAB = (PAD, BOS, *PROMPT_WORDS)
MAX_LEN = 10  # <bos> + at most 9 words ("a large outlined red circle on a dark background")


class Tokenizer:
    """Word-level tokenizer over the tiny world's prompt vocabulary; "" is the unconditional prompt."""

    def __init__(self, vocab=VOCAB, max_len: int = MAX_LEN):
        self.vocab = tuple(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len

    def encode(self, prompt: str) -> list[int]:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        words = prompt.lower().split()
        unknown = [w for w in words if w not in self.index or w in (PAD, BOS)]
        if unknown:
            raise ValueError(f"unknown word(s) {unknown} in prompt {prompt!r}; the tiny world's vocabulary is "
                             f"{list(self.vocab[2:])}")
        if len(words) + 1 > self.max_len:
            raise ValueError(f"prompt {prompt!r} has {len(words)} words; at most {self.max_len - 1} fit")
        ids = [self.index[BOS]] + [self.index[w] for w in words]
        return ids + [self.index[PAD]] * (self.max_len - len(ids))

    def decode(self, ids) -> str:
        return " ".join(self.vocab[i] for i in ids if self.vocab[i] not in (PAD, BOS))

    def __call__(self, prompts: list[str]) -> torch.Tensor:
        return torch.tensor([self.encode(p) for p in prompts], dtype=torch.long)  # (B, L)


class TextEncoder(nn.Module):
    """Token embeddings + a 2-layer transformer → (B, L, D) hidden states for cross-attention."""

    def __init__(self, vocab_size: int = len(VOCAB), dim: int = 64, layers: int = 2, heads: int = 4,
                 max_len: int = MAX_LEN):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, dim=dim, layers=layers, heads=heads, max_len=max_len)
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(1, max_len, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tok(ids) + self.pos[:, : ids.shape[1]]  # (B, L, D)
        return self.norm(self.body(h))

    def save(self, path: str) -> None:
        from ..io import atomic_save_safetensors, atomic_write_json

        atomic_save_safetensors(self.state_dict(), os.path.join(path, "text_encoder.safetensors"))
        atomic_write_json(os.path.join(path, "text_encoder.json"), {**self.config, "vocab": list(VOCAB)})

    @classmethod
    def load(cls, path: str) -> "TextEncoder":
        from safetensors.torch import load_file

        with open(os.path.join(path, "text_encoder.json")) as f:
            cfg = json.load(f)
        cfg.pop("vocab")
        enc = cls(**cfg)
        enc.load_state_dict({k: v.float() for k, v in load_file(os.path.join(path, "text_encoder.safetensors")).items()})
        return enc.eval()

