"""Sparsity × int8 against dense int8 (issue 16, item 5), in one process, OpenVINO:

  MiniLM (all-MiniLM-L6-v2, batch 32 × 128 tokens of real English; every Linear of the six
  layers pruned, embeddings kept): unstructured 50 / 80 / 90% and 16×16 blocks 50 / 80% (by
  magnitude, no recovery training: this measures kernels, the cosine says what it costs),
  each int8 (w8a8, FFN down-projections float as in transformer_int8.py) and run dense and
  with OpenVINO's sparse-weight decompression (CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE; Intel
  documents it for AMX CPUs);
  a CNN (ResNet-18, 224×224, batch 1): unstructured 80% + int8, dense vs the same property
  (it applies to fully-connected layers only: a CNN should gain nothing).

Ratio = dense int8's median latency / the candidate's (> 1: sparse is faster). The pipeline's
benchmark stage keeps a sparse variant only where it measures faster (bench/choose.py).

    python benchmarks/sparse_int8.py [--rounds 8]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from transformer_int8 import batch, load_encoder, sentences  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.bench import Candidate, benchmark, machine_line  # noqa: E402
from slimkit.bench.choose import SPARSE_RATE, has_property, sparse_variant  # noqa: E402
from slimkit.deploy.runtimes import session  # noqa: E402

SPARSE = {"CPU_SPARSE_WEIGHTS_DECOMPRESSION_RATE": SPARSE_RATE}


def table(name: str, model, x, calib, variants, qcfg, d: Path, rounds: int) -> None:
    cands, ref = [], None
    for tag, (gran, ratio, skip) in variants.items():
        m = model if ratio == 0 else sk.prune(
            model, sk.PruneConfig(granularity=gran, ratio=ratio,
                                  rules=tuple(sk.PruneRule(p, skip=True) for p in skip)),
            x)
        q = sk.quantize(m, qcfg, calib=calib, progress=False)
        path = sk.export(q, x, d / f"{name}-{tag}.onnx", runtime="openvino")
        cands.append(Candidate(f"{tag} int8", path, "openvino"))
        if ratio:
            note = "" if sparse_variant(path) else " (no FC weight reaches the rate)"
            cands.append(Candidate(f"{tag} int8, sparse decompression{note}", path,
                                   "openvino", config=SPARSE))
        if ref is None:
            ref = torch.as_tensor(session(path, "openvino").run(x))
    res = benchmark(cands, x, rounds=rounds, runs_per_round=3)
    dense = res.rows[0].median_ms
    print(f"\n## {name}\n{'candidate':<58}{'median ms':>10}{'vs dense int8':>15}{'cosine':>9}")
    for c, r in zip(cands, res.rows, strict=True):
        out = torch.as_tensor(session(c.model, "openvino", config=c.config).run(x))
        cos = torch.nn.functional.cosine_similarity(out.flatten(1), ref.flatten(1)).mean()
        print(f"{r.name:<58}{r.median_ms:>10.2f}{dense / r.median_ms:>14.2f}×{float(cos):>9.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(2)
    print(f"# benchmarks/sparse_int8.py\n{machine_line()}\nsparse property supported here: "
          f"{has_property(next(iter(SPARSE)))}")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model, tok, name = load_encoder()
        x = batch(tok, sentences(32, seed=0))
        calib = [dict(zip(("input_ids", "attention_mask"), batch(tok, sentences(16, seed=s)),
                          strict=True)) for s in range(2, 6)]
        keep = ("*embeddings*", "*pooler*")
        qcfg = sk.QuantConfig.w8a8().skip(pattern="*pooler*").skip(
            pattern="*.layer.*.output.dense")
        variants = {"dense": ("unstructured", 0, keep),
                    "unstructured 50%": ("unstructured", 0.5, keep),
                    "unstructured 80%": ("unstructured", 0.8, keep),
                    "unstructured 90%": ("unstructured", 0.9, keep),
                    "blocks 16×16 50%": ("block", 0.5, keep),
                    "blocks 16×16 80%": ("block", 0.8, keep)}
        table(f"{name}, batch 32 × 128 tokens", model, x, calib, variants, qcfg, d, a.rounds)
        from slimkit.models import resnet18

        torch.manual_seed(0)
        cnn = resnet18().train()
        with torch.no_grad():
            for _ in range(3):
                cnn(torch.randn(8, 3, 224, 224))
        cnn.eval()
        g = torch.Generator().manual_seed(1)
        calib = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(16)]
        variants = {"dense": ("unstructured", 0, ()),
                    "unstructured 80%": ("unstructured", 0.8, ())}
        table("ResNet-18, batch 1, 224×224", cnn, torch.randn(1, 3, 224, 224, generator=g),
              calib, variants, sk.QuantConfig.w8a8(), d, a.rounds)


if __name__ == "__main__":
    main()
