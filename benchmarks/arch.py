"""Architectures beyond CNNs, measured in one process (issue 15).

  1. all-MiniLM-L6-v2: prune attention heads (importance: loss change of masking each head on
     real text) and FFN neurons (Taylor), distill on real English sentences (docstring prose of
     installed packages, benchmarks/arch_text.py; train and evaluation sentences come from
     different packages), dynamic int8 → ONNX Runtime. Speed vs torch fp32 and vs ORT
     quantize_dynamic(per_channel=True) of the unpruned model (the anchor: as torch.onnx.export
     writes it; also on slimkit's float export), slimkit's dynamic int8 (per-token,
     per-tensor, per-tensor with the most sensitive layers per-token) and static w8a8 on ORT
     and OpenVINO; cosine of the sentence
     embeddings vs the original (mean / min) and nearest-neighbour agreement on the held-out
     sentences — a curve over pruning ratios.
  2. slimkit dynamic int8 → ORT vs ORT quantize_dynamic on a bidirectional-LSTM text model.
  3. The SE + concat-into-grouped-conv + chunk + MultiheadAttention net (tests/arch/zoo.py)
     pruned to target_macs 0.3 and 0.5: MACs reached, and the share of MACs in frozen layers.

    python benchmarks/arch.py [--only minilm] [--points 0.25:0.4,0.33:0.5] [--train 3000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests.arch.zoo, benchmarks.arch_text

import slimkit as sk  # noqa: E402
from benchmarks.arch_text import EVAL_PACKAGES, TRAIN_PACKAGES, sentences  # noqa: E402
from slimkit.bench import Candidate, benchmark, machine_line  # noqa: E402
from slimkit.deploy.runtimes import session  # noqa: E402
from slimkit.distill import Distiller  # noqa: E402
from slimkit.quant.mixed_precision.dynamic import per_token_where_needed  # noqa: E402
from slimkit.train import TrainConfig, Trainer  # noqa: E402

BATCH, TOKENS = 32, 128  # the timed batch (as benchmarks/transformer_int8.py)


def say(*a) -> None:
    print(*a, flush=True)


def tokenize(tok, texts, length):
    enc = tok(texts, padding="max_length", truncation=True, max_length=length,
              return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def cosine_loss(model, x, y):
    """1 − cos(student embedding, original embedding); both are L2-normalised."""
    return (1 - (model(*x) * y).sum(-1)).mean()


@torch.no_grad()
def embed(model, batches):
    return np.concatenate([model(*b).numpy() for b in batches])


def runtime_embed(path, batches, runtime: str = "ort"):
    s = session(path, runtime, threads=2)
    return np.concatenate([s.run(b) for b in batches])


def fidelity(ref: np.ndarray, out: np.ndarray) -> tuple[float, float, float]:
    """(mean cosine, min cosine, nearest-neighbour agreement) vs the reference embeddings."""
    out = out / np.linalg.norm(out, axis=1, keepdims=True)
    cos = (ref * out).sum(1)

    def nn_index(e):
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return sim.argmax(1)

    return float(cos.mean()), float(cos.min()), float((nn_index(ref) == nn_index(out)).mean())


def say_fidelity(res, fid: dict, nn: bool = True) -> None:
    """Fidelity (cos mean / min, nearest-neighbour agreement) and speed of every row, against
    torch (the first row) and against ORT quantize_dynamic (the anchor)."""
    anchor = next(r for r in res.rows if r.name.startswith("ORT quantize_dynamic"))
    head = f"{'NN agree':>9}" if nn else ""
    say(f"\n{'candidate':<40}{'cos mean':>9}{'cos min':>9}{head}{'vs torch':>10}"
        f"{'vs ORT dyn':>11}")
    for r in res.rows:
        c = fid[r.name]
        agree = f"{c[2]:>9.1%}" if nn else ""
        say(f"{r.name:<40}{c[0]:>9.5f}{c[1]:>9.4f}{agree}{r.speedup:>9.2f}×"
            f"{anchor.median_ms / r.median_ms:>10.2f}×")


def prune_minilm(model, heads: float, ffn: float, data):
    """Whole heads by the loss change of masking each on data, then FFN neurons (Taylor)."""
    small = model
    if heads:
        small = sk.prune(small, sk.PruneConfig(granularity="head", ratio=heads,
                                               importance="mask"),
                         data[0][0], data=data, loss_fn=cosine_loss)
    if ffn:
        rules = (sk.PruneRule("*", skip=True), sk.PruneRule("*.intermediate.dense", ratio=ffn))
        small = sk.prune(small, sk.PruneConfig(granularity="neuron", ratio=ffn, rules=rules,
                                               importance="taylor"),
                         data[0][0], data=data, loss_fn=cosine_loss)
    return small


def distill(student, teacher, train: list[dict], epochs: int, lr: float) -> float:
    """Embedding cosine + every layer's hidden state (MSE) from the original; minutes.
    The student's dropout is off (measured: +0.01 cosine after a short distillation)."""
    for m in student.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    layers = [f"encoder.encoder.layer.{i}.output" for i in range(6)]
    loss = Distiller(teacher, output_loss="cosine", features=[(n, n) for n in layers],
                     feature_weight=0.05)
    t0 = time.perf_counter()
    Trainer(student, TrainConfig(epochs=epochs, batch_size=32, lr=lr, weight_decay=0.01,
                                 schedule="cosine", progress=False, log_every=10**6),
            train, loss_fn=loss).fit()
    student.eval()
    return (time.perf_counter() - t0) / 60


def anchors(model, x, d: Path) -> None:
    """ORT quantize_dynamic (per-channel) of the model as torch.onnx.export writes it — what a
    user runs today — and of slimkit's float export (attention NaN guard dropped: faster)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dyn = ({0: torch.export.Dim.DYNAMIC}, {0: torch.export.Dim.DYNAMIC})
    with torch.no_grad():
        torch.onnx.export(model, x, d / "plain.onnx", dynamo=True, verbose=False,
                          dynamic_shapes=dyn)
    sk.export(model, x, d / "fp32.onnx")
    for src, out in (("plain", "ort_dyn"), ("fp32", "ort_dyn_sk")):
        quantize_dynamic(str(d / f"{src}.onnx"), str(d / f"{out}.onnx"), per_channel=True,
                         weight_type=QuantType.QInt8)


def minilm(args, d: Path) -> None:
    from transformers import AutoTokenizer

    from slimkit.models.hf import minilm_path, sentence_encoder

    path = minilm_path()
    model, tok = sentence_encoder(path), AutoTokenizer.from_pretrained(path)
    train_txt = sentences(TRAIN_PACKAGES, args.train)
    eval_txt = sentences(EVAL_PACKAGES, args.eval)
    say(f"## all-MiniLM-L6-v2: {len(train_txt)} train sentences ({', '.join(TRAIN_PACKAGES)} "
        f"docstrings), {len(eval_txt)} held-out ({', '.join(EVAL_PACKAGES)})")
    ids, mask = tokenize(tok, train_txt, args.train_tokens)
    train = [{"input_ids": i, "attention_mask": m} for i, m in zip(ids, mask, strict=True)]
    ev = [tokenize(tok, eval_txt[i:i + BATCH], TOKENS) for i in range(0, len(eval_txt), BATCH)]
    x = ev[0]
    ref = embed(model, ev)
    # importance data: batches of 16 training sentences with the original's embeddings
    imp = [tokenize(tok, train_txt[i:i + 16], args.train_tokens)
           for i in range(0, min(args.importance, len(train_txt)), 16)]
    imp = [(b, model(*b).detach()) for b in imp]
    anchors(model, x, d)
    cands = [Candidate("torch fp32", model), Candidate("ORT fp32", d / "fp32.onnx"),
             Candidate("ORT quantize_dynamic (anchor)", d / "ort_dyn.onnx"),
             Candidate("ORT quantize_dynamic, slimkit graph", d / "ort_dyn_sk.onnx")]
    calib = [{"input_ids": b[0], "attention_mask": b[1]} for b, _ in imp[:4]]
    configs = {"slimkit dynamic int8 per-token": sk.QuantConfig.dynamic(),
               "slimkit dynamic int8 per-tensor": sk.QuantConfig.dynamic(
                   activations="per_tensor")}
    for k in (1, 3):
        cfg, choice = per_token_where_needed(model, calib, k)
        configs[f"slimkit dyn per-tensor, {k} per-token"] = cfg
        say(f"  {choice.summary()}")
    for name, cfg in configs.items():
        f = d / f"sk_{len(cands)}.onnx"
        sk.export(sk.quantize(model, cfg), x, f)
        cands.append(Candidate(name, f))
    w8a8 = sk.quantize(model, sk.QuantConfig.w8a8(), calib)
    sk.export(w8a8, x, d / "sk_w8a8.onnx")
    cands += [Candidate("slimkit w8a8 static → ORT", d / "sk_w8a8.onnx"),
              Candidate("slimkit w8a8 static → OpenVINO", d / "sk_w8a8.onnx", "openvino")]
    fid = {"torch fp32": (1.0, 1.0, 1.0)}
    fid.update({c.name: fidelity(ref, runtime_embed(c.model, ev, c.runtime or "ort"))
                for c in cands[1:]})
    notes = {}
    for heads, ffn in args.points:
        name = f"heads -{heads:.0%} FFN -{ffn:.0%} + KD, int8"
        t0 = time.perf_counter()
        small = prune_minilm(model, heads, ffn, imp)
        t_prune = time.perf_counter() - t0
        before = fidelity(ref, embed(small, ev))
        minutes = distill(small, model, train, args.epochs, args.lr)
        after = fidelity(ref, embed(small, ev))
        q = sk.quantize(small, sk.QuantConfig.dynamic(activations="per_tensor"))
        f = d / f"pruned_{heads}_{ffn}.onnx"
        sk.export(q, x, f)
        cands.append(Candidate(name, f))
        fid[name] = fidelity(ref, runtime_embed(f, ev))
        params = sum(p.numel() for p in small.parameters())
        notes[name] = (f"params {params / 1e6:.1f} M; pruned in {t_prune:.0f} s; cosine "
                       f"before KD {before[0]:.4f} / {before[1]:.4f}, after KD (fp32) "
                       f"{after[0]:.4f} / {after[1]:.4f}; distilled {args.epochs} epochs "
                       f"× {len(train)} sentences (lr {args.lr:g}) in {minutes:.1f} min")
        say(f"  {name}: {notes[name]}")
    res = benchmark(cands, x, rounds=args.rounds, runs_per_round=2)
    say(f"batch {BATCH} × {TOKENS} tokens")
    say(res)
    say_fidelity(res, fid)
    for k, v in notes.items():
        say(f"  {k}: {v}")


def lstm(args, d: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from tests.arch.zoo import LSTMText

    torch.manual_seed(0)
    model = LSTMText(vocab=8000, dim=128, hidden=256).eval()
    g = torch.Generator().manual_seed(1)
    xs = [torch.randint(0, 8000, (BATCH, 64), generator=g) for _ in range(8)]
    ref = embed(model, [(b,) for b in xs])
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    sk.export(model, xs[0], d / "lstm.onnx")
    quantize_dynamic(str(d / "lstm.onnx"), str(d / "lstm_ort.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)
    cands = [Candidate("torch fp32", model), Candidate("ORT fp32", d / "lstm.onnx"),
             Candidate("ORT quantize_dynamic (anchor)", d / "lstm_ort.onnx")]
    for act in ("per_token", "per_tensor"):
        q = sk.quantize(model, sk.QuantConfig.dynamic(activations=act))
        sk.export(q, xs[0], d / f"lstm_{act}.onnx")
        cands.append(Candidate(f"slimkit dynamic int8 {act}", d / f"lstm_{act}.onnx"))
    fid = {c.name: fidelity(ref, embed(model, [(b,) for b in xs]) if c.name == "torch fp32"
                            else runtime_embed(c.model, [(b,) for b in xs])) for c in cands}
    res = benchmark(cands, xs[0], rounds=args.rounds, runs_per_round=2)
    say(f"\n## bi-LSTM text model (Embedding 8000×128 → LSTM 128→256 ×2 directions → "
        f"Linear), random weights, batch {BATCH} × 64 tokens; cosine of the pooled output")
    say(res)
    say_fidelity(res, fid, nn=False)


def mixed_net(args) -> None:
    from slimkit.graph.deps import DependencyGraph
    from tests.arch.zoo import build

    model, x = build("se_concat_grouped_mha")
    say("\n## SE + concat(32 + 16) → grouped conv (groups 4) + chunk + MultiheadAttention")
    say(f"{'target_macs':>12}{'MACs removed':>14}{'params ×':>10}{'frozen MACs':>13}")
    g0 = DependencyGraph.build(model, x)
    say(f"{'(before)':>12}{'':>14}{'':>10}{frozen_share(g0):>12.1%}")
    for t in (0.3, 0.5):
        small = sk.prune(model, sk.PruneConfig(target_macs=t), x)
        rep = sk.record_of(small).report
        say(f"{t:>12.2f}{1 - rep.macs_ratio:>13.1%}{rep.params_ratio:>10.3f}"
            f"{frozen_share(DependencyGraph.build(small, x)):>12.1%}")


def frozen_share(graph) -> float:
    """Share of the model's MACs whose every factor is a frozen space (no cut reaches them)."""
    total = graph.macs()
    frozen = sum(int(np.prod([graph.spaces.size_after(s, {}) for s in term]))
                 for _, _, term in graph.cost_terms
                 if all(graph.spaces[leaf].frozen for s in term
                        for leaf in graph.spaces.leaves(s)))
    return frozen / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", default="0.25:0.4,0.33:0.5")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--train-tokens", type=int, default=64)
    ap.add_argument("--eval", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--importance", type=int, default=128, help="sentences for importance")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--only", choices=("minilm", "lstm", "net"), default=None)
    a = ap.parse_args()
    a.points = [tuple(float(v) for v in p.split(":")) for p in a.points.split(",") if p]
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    say(machine_line(2))
    say("(ratios are each from one run, all candidates interleaved)")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        if a.only in (None, "net"):
            mixed_net(a)
        if a.only in (None, "lstm"):
            lstm(a, Path(d))
        if a.only in (None, "minilm"):
            minilm(a, Path(d))
    say(f"\nfinished in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
