"""Unlabelled sentences, one per line, tokenized for a Hugging Face encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from slimkit.errors import ConfigError


class Tokenized(Dataset):
    """Each item: {"input_ids", "attention_mask"}, padded to max_length (batches stack)."""

    def __init__(self, enc) -> None:
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i]}


def text_lines(spec, model_dir: str | None, seed: int = 0) -> tuple[Tokenized, Tokenized]:
    if isinstance(spec, str):
        from slimkit.pipeline.recipe import TextLinesData

        spec = TextLinesData(path=spec)
    path = Path(spec.path)
    if not path.is_file():
        raise ConfigError(f"data.text_lines: {path} does not exist")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ConfigError(f"data.text_lines: {path} holds {len(lines)} sentence(s); the "
                          "pipeline needs some to train and some to evaluate")
    tok_dir = spec.tokenizer or model_dir
    if tok_dir is None:
        raise ConfigError("data.text_lines needs a tokenizer: give data.text_lines.tokenizer "
                          "(a model directory) or a model.hf directory")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    order = np.random.default_rng(seed).permutation(len(lines))
    n_val = max(1, int(round(spec.val_fraction * len(lines))))
    val = [lines[i] for i in order[:n_val]]
    train = [lines[i] for i in order[n_val:]]

    def enc(texts):
        return Tokenized(tok(texts, padding="max_length", truncation=True,
                             max_length=spec.max_length, return_tensors="pt"))
    return enc(train), enc(val)
