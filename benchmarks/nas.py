"""Neural architecture search benchmarks (issue 14). Each table runs in its own process:

  latency      per-layer table (ORT fp32) vs end-to-end ORT: prediction error on held-out nets
  strategies   digits space, 60 trials × 5 seeds: random / evolution / REINFORCE / TPE — best
               val accuracy under a latency constraint, hypervolume; mean ± std over seeds
  supernet     supernet vs proxy scores against longer training: Kendall τ, seconds/candidate
  prune        per-layer pruning-ratio search vs uniform and global pruning at the same
               latency: trained DigitsCNN, and a briefly trained ResNet-18 on 3×32×32 digits

Run:  python benchmarks/nas.py --all    (or --table NAME)
The strategy table scores candidates with a memoised proxy (2 epochs, fixed seed per
encoding): every strategy and seed sees the same noisy function of the encoding, as in the
tabular NAS benchmarks; the cache lives in .slimkit/nas-proxy-cache.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep between calls

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from slimkit.bench.layer_latency import LatencyTable  # noqa: E402
from slimkit.bench.machine import machine_line  # noqa: E402
from slimkit.io.atomic import write_atomic  # noqa: E402
from slimkit.search import (  # noqa: E402
    Constraint,
    EvolutionConfig,
    LatencyConfig,
    ProxyConfig,
    ReinforceConfig,
    SearchConfig,
    SearchError,
    get_space,
    kendall_tau,
    run_search,
    search_data,
)
from slimkit.search.evaluators import ProxyEvaluator, candidate_seed  # noqa: E402

TABLES = ("latency", "strategies", "supernet", "prune")
CACHE = Path(".slimkit")
THREADS = 2
DIGITS_BATCH, DIGITS_LATENCY_MS = 64, 2.5  # the digits searches' latency constraint
# tried after the first AMD run, where REINFORCE lost to random: rank-shaped advantage
RL_VARIANTS = {"reinforce-rank": {"advantage": "rank", "lr": 1.0}}
# aging evolution's population / tournament; smaller populations leave more of 60 trials
# to evolve (the first `population` trials are random)
EVO_VARIANTS = {"evolution-p6": {"population": 6, "sample": 2},
                "evolution-p6-mo": {"population": 6, "sample": 2}}


def header(title: str) -> None:
    print(f"\n== {title} ==")
    print(machine_line(THREADS))


def fmt(xs) -> str:
    return f"{statistics.mean(xs):7.2f} ± {statistics.pstdev(xs):5.2f}"


# ---- latency table ------------------------------------------------------------------------------
def _random_models(space, n: int, seed: int):
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        enc = space.random(rng)
        torch.manual_seed(i)
        out[f"{space.name} #{seed}-{i}"] = (space.build_model(enc).eval(), space.example())
    return out


def table_latency() -> None:
    header("latency table: per-layer kernels, calibrated in-network, vs end-to-end ORT")
    for name, batch, calib_n, check_n in (("digits", 64, 5, 10), ("mobilenetv2", 1, 5, 8),
                                          ("resnet", 1, 5, 8)):
        space = get_space(name)
        # one table (file) per family: its calibration is per table, batch and threads
        table = LatencyTable(batch=batch, threads=THREADS, cache_dir=CACHE / f"latency-{name}")
        t0 = time.perf_counter()
        c = table.calibrate(_random_models(space, calib_n, seed=100))
        rows = table.check(_random_models(space, check_n, seed=200))
        print(f"\n{name}: batch {batch}; fitted on {calib_n} other networks: total = "
              f"{c['scale']:.3f} × Σ kernels + {c['per_mb'] * 1e3:.1f} µs × weight MB + "
              f"{c['per_layer'] * 1e3:.1f} µs × layers + {c['base'] * 1e3:.1f} µs "
              f"({time.perf_counter() - t0:.0f} s incl. sweep)")
        print(f"{'network':<22}{'measured ms':>12}{'predicted':>11}{'error':>8}"
              f"{'cached-table':>14}{'error':>8}")
        for r in rows:
            print(f"{r['model']:<22}{r['measured_ms']:>12.3f}{r['predicted_ms']:>11.3f}"
                  f"{r['error']:>+8.1%}{r['cached_ms']:>14.3f}{r['error_cached']:>+8.1%}")
        errs = [abs(r["error"]) for r in rows]
        errc = [abs(r["error_cached"]) for r in rows]
        print(f"mean |error| {statistics.mean(errs):.1%} (max {max(errs):.1%}); with the cached "
              f"table {statistics.mean(errc):.1%} (max {max(errc):.1%})")


# ---- strategies ---------------------------------------------------------------------------------
class MemoProxy:
    """ProxyEvaluator with a fixed seed per encoding, memoised on disk."""

    def __init__(self, data, path: Path) -> None:
        self.inner = ProxyEvaluator(ProxyConfig(epochs=2), data, seed=0)
        self.path, self.evals, self.seconds = path, 0, 0.0
        self.memo = json.loads(path.read_text()) if path.exists() else {}

    def __call__(self, space, enc, model) -> dict:
        key = ",".join(map(str, enc))
        if key not in self.memo:
            torch.manual_seed(candidate_seed(0, enc))  # same init whatever the search seed
            fresh = space.build_model(enc)
            t = time.perf_counter()
            self.memo[key] = self.inner(space, enc, fresh)["accuracy"]
            self.seconds += time.perf_counter() - t
            self.evals += 1
            if self.evals % 20 == 0:
                self.save()
        return {"accuracy": self.memo[key]}

    def save(self) -> None:
        CACHE.mkdir(exist_ok=True)
        write_atomic(self.path, json.dumps(self.memo))


def latency_at_quantile(q: float, n: int = 200) -> float:
    """The q-quantile of the digits space's predicted latency over n random encodings: a
    constraint that binds as hard on any machine (a fixed ms is loose on a fast one)."""
    space = get_space("digits")
    table = LatencyTable(batch=DIGITS_BATCH, threads=THREADS,
                         cache_dir=CACHE / "latency-search")
    rng = random.Random(12345)
    ms = [table.predict(space.build_model(space.random(rng)).eval(), space.example()).total_ms
          for _ in range(n)]
    return float(statistics.quantiles(ms, n=100)[max(0, round(q * 100) - 1)])


def table_strategies(seeds: int = 5, trials: int = 60, only: list[str] | None = None,
                     latency_ms: float = DIGITS_LATENCY_MS, note: str = "") -> None:
    header(f"strategies: digits space, {trials} trials × {seeds} seeds, latency ≤ "
           f"{latency_ms:.3g} ms{note} (ORT, batch {DIGITS_BATCH}, Σ of the layer table's "
           "kernels, uncalibrated)")
    data = search_data("digits")
    memo = MemoProxy(data, CACHE / "nas-proxy-cache.json")
    ref = [90.0, latency_ms]
    rows = {}
    # label, strategy, draws: a custom strategy redraws a candidate that breaks the constraint
    # (costed without training) up to `draws` times per trial; "reinforce, 1 draw" is the
    # earlier default: every rejection was a trial and counted as the worst reward
    # "-mo" rows (and nsga2) search (accuracy, latency) as two objectives: fitness is the
    # Pareto rank, so they spread along the front that hypervolume measures
    variants = (("random", "random", 32), ("evolution", "evolution", 32),
                ("reinforce", "reinforce", 32), ("tpe", "tpe", 32),
                ("reinforce1", "reinforce", 1), ("reinforce-rank", "reinforce", 32),
                ("evolution-mo", "evolution", 32), ("reinforce-mo", "reinforce", 32),
                ("nsga2", "nsga2", 32), ("evolution-p6", "evolution", 32),
                ("evolution-p6-mo", "evolution", 32))
    for label, strategy, draws in variants:
        if only and label not in only:
            continue
        best, hv, secs = [], [], []
        for seed in range(seeds):
            two = label.endswith("-mo") or strategy == "nsga2"
            evo = {"population": 12, "sample": 3, **EVO_VARIANTS.get(label, {})}
            cfg = SearchConfig(strategy=strategy, n_trials=trials, seed=seed, top_k=0,
                               feasible_draws=draws,
                               objectives=("accuracy", "latency_ms") if two else ("accuracy",),
                               reinforce=ReinforceConfig(**RL_VARIANTS.get(label, {})),
                               constraints=(Constraint("latency_ms", latency_ms),),
                               latency=LatencyConfig(batch=DIGITS_BATCH, threads=THREADS,
                                                     cache_dir=str(CACHE / "latency-search")),
                               evolution=EvolutionConfig(**evo),
                               max_rejections=2000)
            t = time.perf_counter()
            try:
                res = run_search(cfg, data=data, evaluator=memo)
            except SearchError as e:  # e.g. a policy that drifted onto infeasible candidates
                print(f"  {label:<10} seed {seed}: {e}", flush=True)
                break
            secs.append(time.perf_counter() - t)
            best.append(res.best().values[0])
            hv.append(res.hypervolume(ref))
        memo.save()
        if len(best) < seeds:
            continue
        rows[label] = (best, hv, secs)
        print(f"  {label:<10} done: best {fmt(best)}  hv {fmt(hv)}", flush=True)
    print(f"\nproxy: 2 epochs on the search split (1,077 images), val top-1 on 270 held-out "
          f"images; {len(memo.memo)} distinct candidates trained ({memo.evals} in this run, "
          f"{memo.seconds / max(memo.evals, 1):.2f} s each)")
    print(f"hypervolume of (val accuracy, latency) over the completed trials, reference "
          f"({ref[0]:.0f} %, {ref[1]:.3g} ms)\n")
    print(f"{'strategy':<11}{'best val acc %':>18}{'hypervolume':>18}   per seed (best)")
    for s, (best, hv, _) in rows.items():
        print(f"{s:<11}{fmt(best):>18}{fmt(hv):>18}   " + " / ".join(f"{b:.2f}" for b in best))
    print("reinforce1: REINFORCE drawing once per trial (feasible_draws=1, the earlier default): "
          "every rejected draw is a trial and counts as the worst reward so far")


# ---- supernet vs proxy ---------------------------------------------------------------------------
def table_supernet(n: int = 16, full_epochs: int = 10) -> None:
    from slimkit.search import SupernetConfig
    from slimkit.search.supernet import SupernetEvaluator, train_supernet

    header(f"supernet vs proxy: Kendall τ against {full_epochs}-epoch training, {n} random "
           "digits candidates")
    space, data = get_space("digits"), search_data("digits")
    rng = random.Random(7)
    encs = [space.random(rng) for _ in range(n)]
    scores = {"full": [], "proxy 1 ep": [], "proxy 2 ep": [], "supernet": []}
    secs = {k: 0.0 for k in scores}
    for name, epochs in (("full", full_epochs), ("proxy 1 ep", 1), ("proxy 2 ep", 2)):
        ev = ProxyEvaluator(ProxyConfig(epochs=epochs), data, seed=0)
        for enc in encs:
            torch.manual_seed(candidate_seed(0, enc))
            m = space.build_model(enc)
            t = time.perf_counter()
            scores[name].append(ev(space, enc, m)["accuracy"])
            secs[name] += time.perf_counter() - t
    sc = SupernetConfig(epochs=20)
    t = time.perf_counter()
    net = train_supernet(space, sc, data, seed=0, cache=CACHE / "nas-supernet-e20.pt")
    train_s = time.perf_counter() - t
    ev = SupernetEvaluator(net, sc, data)
    for enc in encs:
        t = time.perf_counter()
        scores["supernet"].append(ev(space, enc)["accuracy"])
        secs["supernet"] += time.perf_counter() - t
    print(f"supernet: {sc.epochs} epochs, sandwich (largest + smallest + "
          f"{sc.random_subnets} random), in-place KD, trained once in {train_s:.0f} s "
          "(0 s when loaded from its cache)\n")
    print(f"{'scorer':<13}{'Kendall τ vs full':>18}{'s / candidate':>15}{'mean val acc':>14}")
    for k in scores:
        tau = kendall_tau(scores[k], scores["full"]) if k != "full" else 1.0
        print(f"{k:<13}{tau:>18.2f}{secs[k] / n:>15.2f}{statistics.mean(scores[k]):>14.2f}")


# ---- pruning-ratio search ---------------------------------------------------------------------
def _finetune(model, data, epochs: int, seed: int = 0):
    from slimkit.train import TrainConfig, Trainer

    cfg = TrainConfig(epochs=epochs, lr=1e-3, seed=seed, progress=False, log_every=0)
    with Trainer(model, cfg, data.full_train) as t:
        t.fit()
    return model.eval()


AFTER_CUT = ProxyConfig(epochs=0)  # score a pruned candidate as cut (BN re-estimated)


def _prune_case(name, model, data, x, batch, trials, finetune, proxy=AFTER_CUT):
    from slimkit.bench import Candidate, benchmark
    from slimkit.deploy import export
    from slimkit.pruning import PruneConfig, prune
    from slimkit.search.evaluators import accuracy
    from slimkit.search.prune_space import prune_space
    from slimkit.search.space import model_costs

    table = LatencyTable(batch=batch, threads=THREADS, cache_dir=CACHE / "latency-prune")
    uniform = prune(model, PruneConfig(ratio=0.5), x).model
    lat_u = table.predict(uniform, x).total_ms
    macs_u = model_costs(uniform, x).macs
    macs_0 = model_costs(model, x).macs
    glob = prune(model, PruneConfig(target_macs=1 - macs_u / macs_0, scope="global"), x).model
    space = prune_space(model, x, ratios=(0.0, 0.25, 0.5, 0.625, 0.75))
    cfg = SearchConfig(space="prune", strategy="evolution", n_trials=trials, top_k=0,
                       proxy=proxy, constraints=(Constraint("latency_ms", lat_u),),
                       evolution=EvolutionConfig(population=10, sample=3),
                       latency=LatencyConfig(batch=batch, threads=THREADS,
                                             cache_dir=str(CACHE / "latency-prune")))
    t = time.perf_counter()
    res = run_search(cfg, space=space, data=data)
    search_s = time.perf_counter() - t
    searched = space.build_model(res.best().encoding)
    models = {"original": model.eval(), "uniform 50%": uniform, "global, same MACs": glob,
              "searched ratios": searched}
    before = {k: accuracy(m, data.test) for k, m in models.items()}
    for k in list(models)[1:]:
        models[k] = _finetune(models[k], data, finetune)
    xb = x.expand(batch, *x.shape[1:]).contiguous()
    tmp = CACHE / "nas-prune"
    tmp.mkdir(parents=True, exist_ok=True)
    paths = {k: export(m, xb, tmp / f"{name}-{i}.onnx") for i, (k, m) in enumerate(models.items())}
    bench = benchmark([Candidate(k, str(p), "ort") for k, p in paths.items()], xb,
                      threads=THREADS)
    how = ("right after the cut (BN re-estimated on 8 train batches)" if proxy.epochs == 0
           else f"after a {proxy.epochs}-epoch fine-tune on {proxy.data_fraction:.0%} of the "
                "search split")
    print(f"\n{name}: search = evolution, {trials} trials, ratios (0, .25, .5, .625, .75) per "
          f"group ({len(space.genes)} groups), scored on val {how}, "
          f"constraint predicted latency ≤ uniform's {lat_u:.3f} ms; {search_s:.0f} s. Then "
          f"each pruned model fine-tuned {finetune} epoch(s) on the full train split.")
    print(f"{'model':<20}{'params':>10}{'MACs':>12}{'test acc cut':>13}{'fine-tuned':>11}"
          f"{'ORT ms':>9}{'speedup':>9}")
    for (k, m), row in zip(models.items(), bench.rows, strict=True):
        c = model_costs(m, x)
        ft = "" if k == "original" else f"{accuracy(m, data.test):.2f}"
        print(f"{k:<20}{c.params:>10,}{c.macs:>12,}{before[k]:>13.2f}{ft:>11}"
              f"{row.median_ms:>9.3f}{row.speedup:>8.2f}×")
    print("searched ratios: " + ", ".join(f"{g}={r}" for g, r in res.best().arch.items()))


def table_prune() -> None:
    from slimkit.data.digits import digits_tensors
    from slimkit.models import DigitsCNN, resnet18
    from slimkit.search import search_data
    from slimkit.train import TrainConfig, Trainer

    header("pruning-ratio search vs uniform / global at the same latency (ORT fp32; the "
           "constraint uses the uncalibrated layer table, the comparison measures end to end)")
    data = search_data("digits")
    torch.manual_seed(0)  # the demo recipe's DigitsCNN: 20 epochs, lr 3e-3, seed 0
    cnn = DigitsCNN()
    Trainer(cnn, TrainConfig(epochs=20, lr=3e-3, seed=0, progress=False),
            digits_tensors()[0]).fit()
    cnn.eval()
    _prune_case("DigitsCNN (trained 20 epochs, the demo's)", cnn, data,
                torch.randn(1, 1, 8, 8), DIGITS_BATCH, trials=40, finetune=3)
    d32 = search_data("digits32")
    torch.manual_seed(0)
    net = resnet18(num_classes=10)
    path = CACHE / "nas-resnet18-digits32-e3.pt"
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
    else:
        net = _finetune(net, d32, 3)
        torch.save(net.state_dict(), path)
    name = "ResNet-18 (torchvision layout, 3×32×32 digits, trained 3 epochs from random init)"
    _prune_case(name, net.eval(), d32, torch.randn(1, 3, 32, 32), 1, trials=30, finetune=2)
    # scored right after the cut, every candidate of the briefly trained ResNet is at chance:
    # the same search again with a short fine-tune as the score
    _prune_case(name, net.eval(), d32, torch.randn(1, 3, 32, 32), 1, trials=20, finetune=2,
                proxy=ProxyConfig(epochs=1, data_fraction=0.3, lr=1e-3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", choices=TABLES)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--only", nargs="*", help="strategies table: only these rows")
    ap.add_argument("--latency-quantile", type=float, default=None,
                    help="strategies table: constrain latency to this quantile of the space's "
                         f"(default: {DIGITS_LATENCY_MS} ms)")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    if args.all:
        for t in TABLES:
            subprocess.run([sys.executable, __file__, "--table", t], check=True)
        return
    if args.table == "strategies":
        q = args.latency_quantile
        if q is None:
            return table_strategies(only=args.only)
        return table_strategies(only=args.only, latency_ms=latency_at_quantile(q),
                                note=f" (the {q:.0%} quantile of 200 random encodings)")
    {"latency": table_latency, "supernet": table_supernet,
     "prune": table_prune}[args.table or "latency"]()


if __name__ == "__main__":
    main()
