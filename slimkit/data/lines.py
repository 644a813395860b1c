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


def text_lines(path, tokenizer, max_length: int = 128, val_fraction: float = 0.25,
               val_path=None, seed: int = 0) -> tuple[Tokenized, Tokenized]:
    """(train, val) sentences of `path`, one per line, tokenized by `tokenizer` (a model
    directory, or a tokenizer object); held out: `val_path`, or a seeded split."""
    lines = _read(Path(path), "path")
    tok = _tokenizer(tokenizer)
    if val_path is not None:
        train, val = lines, _read(Path(val_path), "val_path")
    else:
        if len(lines) < 2:
            raise ConfigError(f"data.text_lines: {path} holds {len(lines)} sentence(s); "
                              "the pipeline needs some to train and some to evaluate")
        order = np.random.default_rng(seed).permutation(len(lines))
        n_val = max(1, int(round(val_fraction * len(lines))))
        val = [lines[i] for i in order[:n_val]]
        train = [lines[i] for i in order[n_val:]]

    def enc(texts):
        return Tokenized(tok(texts, padding="max_length", truncation=True,
                             max_length=max_length, return_tensors="pt"))
    return enc(train), enc(val)


def _read(path: Path, field: str) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"data.text_lines.{field}: {path} does not exist")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise ConfigError(f"data.text_lines.{field}: {path} holds no sentence")
    return lines


def _tokenizer(where):
    if where is None:
        raise ConfigError("data.text_lines needs a tokenizer: give data.text_lines.tokenizer "
                          "(a model directory, or pkg.mod:fn returning one) or a model.hf "
                          "directory")
    if not isinstance(where, str | Path):
        return where  # a tokenizer object already
    from transformers import AutoTokenizer  # optional and heavy: only for text data

    return AutoTokenizer.from_pretrained(where)
