"""Neural architecture search benchmarks (issue 14). Each table runs in its own process:

  latency      per-layer table (ORT fp32) vs end-to-end ORT: prediction error on held-out nets
  strategies   digits space, 60 trials × 5 seeds: random / evolution / REINFORCE / TPE — best
               val accuracy (or --metric loss) under a latency constraint, hypervolume; mean ±
               std over seeds; --scorer proxy (2-epoch training) or supernet
  supernet     supernet vs proxy scores against longer training: Kendall τ, seconds/candidate
  prune        per-layer pruning-ratio search vs uniform and global pruning at the same
               latency: DigitsCNN and ResNet-18 (3×32×32 digits) trained on the search split;
               the searched pick is the best of the top 5 whose measured latency ≤ uniform's

Run:  python benchmarks/nas.py --all    (or --table NAME)
The strategy table scores candidates with a memoised proxy (2 epochs, fixed seed per
encoding): every strategy and seed sees the same noisy function of the encoding, as in the
tabular NAS benchmarks; the cache lives in .slimkit/nas-proxy-cache.json (supernet:
nas-supernet-cache.json).
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

from slimkit.atomic import write_atomic  # noqa: E402
from slimkit.latency.machine import machine_line  # noqa: E402
from slimkit.latency.table import LatencyTable  # noqa: E402
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
RL_VARIANTS = {"reinforce-rank": {"advantage": "rank", "lr": 1.0},
               "reinforce-rank-mo": {"advantage": "rank", "lr": 1.0},
               "reinforce-lr1-mo": {"lr": 1.0}}
# aging evolution's population / tournament; smaller populations leave more of 60 trials
# to evolve (the first `population` trials are random)
EVO_VARIANTS = {"evolution-p6": {"population": 6, "sample": 2},
                "evolution-p6-mo": {"population": 6, "sample": 2}}


def header(title: str) -> None:
    print(f"\n== {title} ==")
    print(machine_line(THREADS))


def fmt(xs) -> str:
    d = 4 if abs(statistics.mean(xs)) < 1 else 2  # a cross-entropy needs more digits
    return f"{statistics.mean(xs):7.{d}f} ± {statistics.pstdev(xs):5.{d}f}"


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
    for name, batch, calib_n, check_n in (("digits", 64, 10, 10), ("mobilenetv2", 1, 10, 8),
                                          ("resnet", 1, 10, 8)):
        space = get_space(name)
        # one table (file) per family: its calibration is per table, batch and threads
        table = LatencyTable(batch=batch, threads=THREADS, cache_dir=CACHE / f"latency-{name}")
        t0 = time.perf_counter()
        c = table.calibrate(_random_models(space, calib_n, seed=100))
        rows = table.check(_random_models(space, check_n, seed=200))
        loo = table.calibration_info["loo_error"]
        print(f"\n{name}: batch {batch}; fitted on {calib_n} other networks: total = "
              f"{c['scale']:.3f} × Σ kernels + {c['per_mb'] * 1e3:.1f} µs × weight MB + "
              f"{c['per_layer'] * 1e3:.1f} µs × layers + {c['base'] * 1e3:.1f} µs "
              f"(leave-one-out error on them {loo:.1%}; {table.REPEATS} joint runs pooled by "
              f"median, each side; {time.perf_counter() - t0:.0f} s incl. sweep)")
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
    """A scorer with a fixed result per encoding, memoised on disk: the 2-epoch proxy (fixed
    seed per encoding) or the one-shot supernet (trained once, shared weights)."""

    def __init__(self, data, path: Path, scorer: str = "proxy") -> None:
        if scorer == "supernet":
            from slimkit.search import SupernetConfig
            from slimkit.search.supernet import SupernetEvaluator, train_supernet

            sc = SupernetConfig(epochs=20)
            net = train_supernet(get_space("digits"), sc, data, seed=0,
                                 cache=CACHE / "nas-supernet-e20.pt")
            self.inner = SupernetEvaluator(net, sc, data)
        else:
            self.inner = ProxyEvaluator(ProxyConfig(epochs=2), data, seed=0)
        self.scorer = scorer
        self.path, self.evals, self.seconds = path, 0, 0.0
        memo = json.loads(path.read_text()) if path.exists() else {}
        # entries of the accuracy-only cache (a float) are scored again, with the loss
        self.memo = {k: v for k, v in memo.items() if isinstance(v, dict)}

    def __call__(self, space, enc, model) -> dict:
        key = ",".join(map(str, enc))
        if key not in self.memo:
            torch.manual_seed(candidate_seed(0, enc))  # same init whatever the search seed
            fresh = space.build_model(enc) if self.scorer == "proxy" else None
            t = time.perf_counter()
            self.memo[key] = self.inner(space, enc, fresh)
            self.seconds += time.perf_counter() - t
            self.evals += 1
            if self.evals % 20 == 0:
                self.save()
        return self.memo[key]

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
                     latency_ms: float = DIGITS_LATENCY_MS, note: str = "",
                     scorer: str = "proxy", metric: str = "accuracy") -> None:
    header(f"strategies: digits space, {trials} trials × {seeds} seeds, latency ≤ "
           f"{latency_ms:.3g} ms{note} (ORT, batch {DIGITS_BATCH}, Σ of the layer table's "
           f"kernels, uncalibrated); scorer: {scorer}, metric: val {metric}")
    data = search_data("digits")
    memo = MemoProxy(data, CACHE / ("nas-proxy-cache.json" if scorer == "proxy"
                                    else "nas-supernet-cache.json"), scorer)
    # hypervolume reference: 90 % accuracy, or a cross-entropy of 0.5 (about as good)
    ref = [90.0 if metric == "accuracy" else 0.5, latency_ms]
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
                ("evolution-p6-mo", "evolution", 32), ("reinforce-rank-mo", "reinforce", 32),
                ("reinforce-lr1-mo", "reinforce", 32))
    for label, strategy, draws in variants:
        if only and label not in only:
            continue
        best, hv, acc = [], [], []
        for seed in range(seeds):
            two = label.endswith("-mo") or strategy == "nsga2"
            evo = {"population": 12, "sample": 3, **EVO_VARIANTS.get(label, {})}
            cfg = SearchConfig(strategy=strategy, n_trials=trials, seed=seed, top_k=0,
                               feasible_draws=draws,
                               objectives=(metric, "latency_ms") if two else (metric,),
                               reinforce=ReinforceConfig(**RL_VARIANTS.get(label, {})),
                               constraints=(Constraint("latency_ms", latency_ms),),
                               latency=LatencyConfig(batch=DIGITS_BATCH, threads=THREADS,
                                                     cache_dir=str(CACHE / "latency-search")),
                               evolution=EvolutionConfig(**evo),
                               max_rejections=2000)
            try:
                res = run_search(cfg, data=data, evaluator=memo)
            except SearchError as e:  # e.g. a policy that drifted onto infeasible candidates
                print(f"  {label:<10} seed {seed}: {e}", flush=True)
                break
            best.append(res.best().values[0])
            hv.append(res.hypervolume(ref))
            acc.append(res.best().metrics["accuracy"])
        memo.save()
        if len(best) < seeds:
            continue
        rows[label] = (best, hv, acc)
        print(f"  {label:<10} done: best {fmt(best)}  hv {fmt(hv)}", flush=True)
    how = ("proxy: 2 epochs on the search split (1,077 images)" if scorer == "proxy" else
           "supernet: 20 epochs once (sandwich, in-place KD), BN re-estimated per candidate")
    print(f"\n{how}, val top-1 on 270 held-out images; {len(memo.memo)} distinct candidates "
          f"scored ({memo.evals} in this run, {memo.seconds / max(memo.evals, 1):.2f} s each)")
    print(f"hypervolume of (val {metric}, latency) over the completed trials, reference "
          f"({ref[0]:g}, {ref[1]:.3g} ms)\n")
    name = "best val acc %" if metric == "accuracy" else "best val loss"
    print(f"{'strategy':<15}{name:>16}{'hypervolume':>18}{'its val acc %':>18}   "
          "per seed (best)")
    for s, (best, hv, acc) in rows.items():
        print(f"{s:<15}{fmt(best):>16}{fmt(hv):>18}{fmt(acc):>18}   "
              + " / ".join(f"{b:.3g}" for b in best))
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


def _after_cut(model, data) -> float:
    """Test accuracy as cut, BatchNorm statistics re-estimated (as the search scores it)."""
    import copy

    from slimkit.search.evaluators import accuracy, recalibrate_bn

    m = copy.deepcopy(model)
    recalibrate_bn(m, data.train, batches=8)
    return accuracy(m, data.test)
RATIOS = (0.0, 0.25, 0.5, 0.625, 0.75)


def _prune_case(name, model, data, x, batch, trials, finetune, proxy=AFTER_CUT,
                metric="loss", seeds=3):
    """Uniform 50 %, global at uniform's MACs, and evolution over per-group ratios under
    "predicted latency ≤ uniform's" (the layer table calibrated in-network on pruned variants
    of this model first); each fine-tuned `seeds` times; latencies in one benchmark run."""
    import copy

    from slimkit.bench import Candidate, benchmark
    from slimkit.deploy import export
    from slimkit.pruning import PruneConfig, prune
    from slimkit.search.evaluators import accuracy
    from slimkit.search.prune_space import prune_space
    from slimkit.search.space import model_costs

    cache = CACHE / f"latency-prune-b{batch}"
    table = LatencyTable(batch=batch, threads=THREADS, cache_dir=cache)
    uniform = prune(model, PruneConfig(ratio=0.5), x)
    macs_u, macs_0 = model_costs(uniform, x).macs, model_costs(model, x).macs
    glob = prune(model, PruneConfig(target_macs=1 - macs_u / macs_0, scope="global"), x)
    space = prune_space(model, x, ratios=RATIOS)
    t = time.perf_counter()
    rng = random.Random(5)  # + 3 random candidates of the space: spread layer shapes
    variants = {f"uniform {r}": prune(model, PruneConfig(ratio=r), x)
                for r in (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)}
    variants |= {"original": model, "global": glob}
    variants |= {f"random {i}": space.build_model(space.random(rng)) for i in range(3)}
    fit = table.calibrate({k: (m, x) for k, m in variants.items()})
    lat_u = table.predict(uniform, x).total_ms
    print(f"\nlatency table calibrated on {len(variants)} variants of this model in "
          f"{time.perf_counter() - t:.0f} s: "
          + ", ".join(f"{k} {v:.3g}" for k, v in fit.items()), flush=True)
    cfg = SearchConfig(space="prune", strategy="evolution", n_trials=trials, top_k=0,
                       objectives=(metric,), proxy=proxy,
                       constraints=(Constraint("latency_ms", lat_u),),
                       evolution=EvolutionConfig(population=10, sample=3),
                       latency=LatencyConfig(batch=batch, threads=THREADS, cache_dir=str(cache)))
    t = time.perf_counter()
    res = run_search(cfg, space=space, data=data)
    search_s = time.perf_counter() - t
    searched, arch, picked = _measured_pick(res, space, uniform, x, batch, name)
    models = {"original": model.eval(), "uniform 50%": uniform, "global, same MACs": glob,
              "searched ratios": searched}
    before = {k: _after_cut(m, data) for k, m in models.items()}
    tuned = {(k, e): [accuracy(_finetune(copy.deepcopy(m), data, e, seed=s), data.test)
                      for s in range(seeds)]
             for k, m in list(models.items())[1:] for e in finetune}
    xb = x.expand(batch, *x.shape[1:]).contiguous()
    tmp = CACHE / "nas-prune"
    tmp.mkdir(parents=True, exist_ok=True)
    paths = {k: export(m, xb, tmp / f"{name.split()[0]}-{i}.onnx")
             for i, (k, m) in enumerate(models.items())}
    bench = benchmark([Candidate(k, str(p), "ort") for k, p in paths.items()], xb,
                      threads=THREADS, rounds=20, runs_per_round=1)
    how = ("right after the cut (BN re-estimated on 8 train batches)" if proxy.epochs == 0
           else f"after a {proxy.epochs}-epoch fine-tune on {proxy.data_fraction:.0%} of the "
                "search split")
    print(f"\n{name}: search = evolution, {trials} trials, ratios {RATIOS} per group "
          f"({len(space.genes)} groups), val {metric} {how}, constraint predicted latency ≤ "
          f"uniform's {lat_u:.3f} ms; {search_s:.0f} s. Then each pruned model fine-tuned "
          f"{' or '.join(map(str, finetune))} epochs on the full train split, {seeds} seeds "
          "(mean ± std).")
    table = LatencyTable(batch=batch, threads=THREADS, cache_dir=cache)  # + the search's layers
    print(f"{'model':<20}{'params':>10}{'MACs':>12}{'pred ms':>9}{'test acc cut':>13}"
          + "".join(f"{f'fine-tuned {e} ep':>18}" for e in finetune)
          + f"{'ORT ms':>9}{'speedup':>9}")
    for (k, m), row in zip(models.items(), bench.rows, strict=True):
        c = model_costs(m, x)
        ft = "".join(f"{'' if k == 'original' else fmt(tuned[k, e]):>18}" for e in finetune)
        print(f"{k:<20}{c.params:>10,}{c.macs:>12,}{table.predict(m, x).total_ms:>9.3f}"
              f"{before[k]:>13.2f}{ft}{row.median_ms:>9.3f}{row.speedup:>8.2f}×")
    print(picked)
    print("searched ratios: " + ", ".join(f"{g}={r}" for g, r in arch.items()))


def _measured_pick(res, space, uniform, x, batch, name, k: int = 5, slack: float = 1.02):
    """The best-scoring of the search's top k whose *measured* latency is within `slack` of
    uniform's (all timed in one interleaved run): the table's prediction picks what to try,
    the device has the last word. None within: the fastest of them."""
    from slimkit.bench import Candidate, benchmark
    from slimkit.deploy import export

    sign = 1 if res.directions[0] == "maximize" else -1
    top = sorted(res.completed, key=lambda t: -sign * t.values[0])[:k]
    xb = x.expand(batch, *x.shape[1:]).contiguous()
    tmp = CACHE / "nas-prune"
    tmp.mkdir(parents=True, exist_ok=True)
    built = [space.build_model(t.encoding) for t in top]
    paths = [export(uniform, xb, tmp / f"{name.split()[0]}-pick-u.onnx")]
    paths += [export(m, xb, tmp / f"{name.split()[0]}-pick-{i}.onnx") for i, m in enumerate(built)]
    rows = benchmark([Candidate(f"c{i}", str(p), "ort") for i, p in enumerate(paths)], xb,
                     threads=THREADS, rounds=20, runs_per_round=1).rows
    ms = [r.median_ms / rows[0].median_ms for r in rows[1:]]
    ok = [i for i, r in enumerate(ms) if r <= slack]
    i = ok[0] if ok else min(range(len(ms)), key=ms.__getitem__)
    why = (f"picked trial {top[i].number} (rank {i + 1} of the top {len(top)} by val "
           f"{res.objectives[0]}): measured {ms[i]:.2f}× uniform's latency; top-k "
           "measured / uniform: " + ", ".join(f"{r:.2f}" for r in ms))
    return built[i], top[i].arch, why


def _trained(model, data, epochs: int, lr: float, path: Path):
    """`model` trained on the search split only (its val images stay unseen: the search
    scores candidates there), cached."""
    from slimkit.train import TrainConfig, Trainer

    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    with Trainer(model, TrainConfig(epochs=epochs, lr=lr, seed=0, progress=False,
                                    log_every=0), data.train) as t:
        t.fit()
    from slimkit.atomic import atomic_path

    CACHE.mkdir(exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return model.eval()


def table_prune(only: list[str] | None = None) -> None:
    from slimkit.models import DigitsCNN, resnet18

    header("pruning-ratio search vs uniform / global at the same latency (ORT fp32; the "
           "constraint uses the layer table calibrated on this model's pruned variants, the "
           "comparison measures end to end)")
    if not only or "digits" in only:
        data = search_data("digits")
        torch.manual_seed(0)  # the demo recipe's DigitsCNN: 20 epochs, lr 3e-3, seed 0
        cnn = _trained(DigitsCNN(), data, 20, 3e-3, CACHE / "nas-digitscnn-search-e20.pt")
        _prune_case("DigitsCNN (trained 20 epochs on the search split)", cnn, data,
                    torch.randn(1, 1, 8, 8), DIGITS_BATCH, trials=40, finetune=(1, 3))
    if not only or "resnet" in only:
        d32 = search_data("digits32")
        torch.manual_seed(0)
        net = _trained(resnet18(num_classes=10), d32, 10, 1e-3,
                       CACHE / "nas-resnet18-digits32-search-e10.pt")
        name = ("ResNet-18 (torchvision layout, 3×32×32 digits, trained 10 epochs on the "
                "search split)")
        # scored right after the cut, a ResNet pruned this far is near chance (val 38 % for
        # uniform 50 %): a 1-epoch fine-tune on half the search split is the score instead
        _prune_case(name, net, d32, torch.randn(1, 3, 32, 32), 1, trials=40, finetune=(1, 4),
                    proxy=ProxyConfig(epochs=1, data_fraction=0.5, lr=1e-3))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", choices=TABLES)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--only", nargs="*", help="strategies table: only these rows; prune "
                    "table: digits and/or resnet")
    ap.add_argument("--scorer", choices=("proxy", "supernet"), default="proxy",
                    help="strategies table: score candidates by the 2-epoch proxy or the "
                         "supernet")
    ap.add_argument("--metric", choices=("accuracy", "loss"), default="accuracy",
                    help="strategies table: the search metric (val top-1 or cross-entropy)")
    ap.add_argument("--seeds", type=int, default=5, help="strategies table: seeds per row")
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
        q, kw = args.latency_quantile, {"only": args.only, "scorer": args.scorer,
                                        "seeds": args.seeds, "metric": args.metric}
        if q is None:
            return table_strategies(**kw)
        return table_strategies(latency_ms=latency_at_quantile(q),
                                note=f" (the {q:.0%} quantile of 200 random encodings)", **kw)
    if args.table == "prune":
        return table_prune(args.only)
    {"latency": table_latency, "supernet": table_supernet}[args.table or "latency"]()


if __name__ == "__main__":
    main()
