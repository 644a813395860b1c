"""The search loop (one worker) and run_search, the entry point.

    result = run_search(SearchConfig(strategy="evolution", n_trials=60,
                                     constraints=(Constraint("latency_ms", 0.8),),
                                     latency=LatencyConfig(batch=64), run_dir="runs/nas"))
    result.candidates[0].model          # trained nn.Module, retrained from scratch

Each worker: ask (the strategy proposes) → within budget? → build (seeded per encoding) →
costs (params, MACs, latency from the layer table) → constraint? → evaluate → tell. A builder
or evaluator error fails that trial with its error and the search goes on; a killed worker
loses only its running trial. Workers are processes sharing the storage: `workers=N` starts
N − 1 more on this machine; on other machines, run_search (or search_worker) with the same
config and an RDB URL as storage.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
import traceback
from collections import Counter
from collections.abc import Callable

import torch
from optuna.trial import TrialState

from slimkit.search.config import SearchConfig
from slimkit.search.evaluators import ProxyEvaluator, SearchData, candidate_seed, search_data
from slimkit.search.latency import calibration_note, latency_table
from slimkit.search.prune_space import prune_space
from slimkit.search.results import collect, finish
from slimkit.search.space import Costs, SearchError, Space, model_costs, violation
from slimkit.search.spaces import SPACES, get_space
from slimkit.search.storage import Lease, fail_lost_trials, in_budget, open_study
from slimkit.search.strategies import make_sampler
from slimkit.search.supernet import SupernetEvaluator

log = logging.getLogger("slimkit.search")
POLL_S = 0.5
Evaluator = Callable[[Space, tuple, torch.nn.Module], dict]


def make_evaluator(config: SearchConfig, space: Space, data: SearchData) -> Evaluator:
    if config.evaluator == "supernet":
        return SupernetEvaluator.for_space(space, config, data)
    return ProxyEvaluator(config.proxy, data, config.seed)


class _Worker:
    def __init__(self, config: SearchConfig, space: Space, evaluator: Evaluator, table,
                 owner: str | None = None) -> None:
        self.cfg, self.space, self.evaluate, self.table = config, space, evaluator, table
        sampler = make_sampler(config.strategy, space, config.seed, config.evolution,
                               config.reinforce)
        if hasattr(sampler, "constrain"):  # redraws: infeasible or already finished ones
            sampler.constrain(self.feasible if config.constraints else None,
                              config.feasible_draws)
        self.study = open_study(config, space, sampler, owner)
        self._costs: dict[tuple, Costs] = {}  # encoding → costs (a redrawn one is costed once)
        self._last: tuple | None = None  # (encoding, model) of the last draw feasible() built
        self.lease = Lease(config.heartbeat_s)
        self.failures, self.in_a_row = 0, 0
        self.rejections: Counter = Counter()
        self.best_seen: dict[str, float] = {}

    def run(self):
        cfg, study = self.cfg, self.study
        dists = self.space.distributions()
        while True:
            fail_lost_trials(study, cfg.heartbeat_s)
            trials = study.get_trials(deepcopy=False)
            done = sum(t.state == TrialState.COMPLETE for t in trials)
            if done >= cfg.n_trials:
                return study
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if done + running >= cfg.n_trials:  # the last ones run elsewhere: wait for them
                time.sleep(POLL_S)
                continue
            trial = study.ask(dists)
            self.lease.hold(trial)
            try:
                self._one(trial)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
            finally:
                self.lease.release()

    def _one(self, trial) -> None:
        cfg, study = self.cfg, self.study
        if not in_budget(study, trial.number, cfg.n_trials):
            trial.set_user_attr("surplus", True)  # another worker took the last slot
            study.tell(trial, state=TrialState.FAIL)
            return
        enc = self.space.from_params(trial.params)
        trial.set_user_attr("encoding", list(enc))
        t0 = time.perf_counter()
        try:
            model, costs = self._candidate(enc)
        except Exception as e:  # noqa: BLE001 — a candidate that cannot be built fails alone
            return self._fail(trial, "build", e)
        trial.set_user_attr("costs", costs.to_dict())
        bad = violation(costs, cfg.constraints)
        if bad is not None:
            return self._reject(trial, bad, costs.get(bad.cost))
        self.in_a_row = 0
        try:
            metrics = self.evaluate(self.space, enc, model)
        except Exception as e:  # noqa: BLE001 — e.g. a forward that fails for these shapes
            return self._fail(trial, "evaluate", e)
        values = [metrics[o] if o in metrics else costs.get(o) for o in cfg.objectives]
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        study.tell(trial, values)

    def _build(self, enc: tuple) -> torch.nn.Module:
        last = self._last
        self._last = None  # a model is handed out once: the trial trains it
        if last is not None and last[0] == enc:
            return last[1]
        torch.manual_seed(candidate_seed(self.cfg.seed, enc))  # the same init in any worker
        return self.space.build_model(enc)

    def _candidate(self, enc: tuple) -> tuple[torch.nn.Module, Costs]:
        model = self._build(enc)
        if enc not in self._costs:
            self._costs[enc] = model_costs(model, self.space.example(), self.table)
        return model, self._costs[enc]

    def feasible(self, enc: tuple) -> bool:
        """The sampler's check: does the built candidate meet the constraints?"""
        try:
            model, costs = self._candidate(enc)
        except Exception:  # noqa: BLE001 — let the trial itself fail with the builder's error
            return True
        self._last = (enc, model)  # the draw the trial will most likely take
        return violation(costs, self.cfg.constraints) is None

    def _fail(self, trial, stage: str, e: Exception) -> None:
        msg = f"{stage}: {type(e).__name__}: {e}"
        trial.set_user_attr("error", msg[:2000])
        trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
        self.study.tell(trial, state=TrialState.FAIL)
        self.failures += 1
        log.warning("trial %d failed (%s)", trial.number, msg)
        if self.failures > self.cfg.max_failures:
            raise SearchError(f"{self.failures} trials failed in this worker (more than "
                              f"max_failures={self.cfg.max_failures}); last: {msg}")

    def _reject(self, trial, bad, value: float) -> None:
        trial.set_user_attr("rejected", f"{bad.cost} = {value:.4g} > {bad.max:g}")
        # PRUNED tells Optuna's TPE "worse than any completed trial" (it learns to avoid the
        # region); its multi-objective split cannot rank pruned trials, so there: FAIL
        state = TrialState.PRUNED if len(self.cfg.objectives) == 1 else TrialState.FAIL
        self.study.tell(trial, state=state)
        self.rejections[str(bad)] += 1
        self.best_seen[bad.cost] = min(self.best_seen.get(bad.cost, value), value)
        self.in_a_row += 1
        if self.in_a_row >= self.cfg.max_rejections:
            worst, n = self.rejections.most_common(1)[0]
            cost = worst.split(" ")[0]
            raise SearchError(
                f"no candidate satisfies the constraint {worst}: {self.in_a_row} candidates in "
                f"a row were rejected ({n} of all rejections by it; the lowest {cost} seen was "
                f"{self.best_seen[cost]:.4g}); relax the constraint or change the space")


def search_worker(config: SearchConfig, space: Space, evaluator: Evaluator | None = None,
                  data: SearchData | None = None, table=None, owner: str | None = None):
    """Run trials until the study holds config.n_trials completed ones; returns the study.
    table: the LatencyTable that costs latency (default: latency_table(config, space), the
    cached calibration of this space, or a new one). owner: who the study belongs to (a
    recipe's identity); a study of another owner is refused."""
    evaluator = evaluator or make_evaluator(config, space, data or search_data(config.data))
    table = table if table is not None else latency_table(config, space)
    return _Worker(config, space, evaluator, table, owner).run()


def _worker_main(config_dict: dict, owner: str | None) -> None:  # a spawned worker process

    torch.set_num_threads(1)
    config = SearchConfig.from_dict(config_dict)
    search_worker(config, get_space(config.space, **config.space_options), owner=owner)


def run_search(config: SearchConfig, *, space: Space | None = None,
               evaluator: Evaluator | None = None, data: SearchData | None = None,
               model: torch.nn.Module | None = None, workers: int = 1,
               owner: str | None = None, replace: bool = False):
    """Search, then retrain the top_k candidates from scratch (pruning spaces: fine-tune),
    export and benchmark them. Returns a SearchResult. space: a Space object (default: the
    config's registered one; 'prune' builds the per-layer ratio space of `model`).
    owner: who the study belongs to (a recipe's identity): a study of another owner is refused,
    or with replace=True deleted first. Other hosts join by running the same config (and
    owner) against the same storage URL."""
    if space is None:
        space = _resolve_space(config, model)
    data = data or search_data(config.data)
    t0 = time.perf_counter()
    # the study exists and is checked (schema, owner, identity) before any worker opens it
    open_study(config, space, None, owner, replace)
    table = latency_table(config, space)  # calibrated (and cached) before any worker starts
    procs = _spawn_workers(config, evaluator, workers - 1, owner) if workers > 1 else []
    try:
        study = search_worker(config, space, evaluator, data, table, owner)
        seconds = time.perf_counter() - t0
    finally:
        for p in procs:
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise SearchError(f"{len(bad)} of the {len(procs)} extra worker processes failed "
                          f"(exit codes {bad}); their errors are on stderr")
    result = collect(config, space, study, seconds)
    result.latency = calibration_note(table)
    return finish(result, config, space, data, table)


def _spawn_workers(config, evaluator, n: int, owner: str | None) -> list:
    if evaluator is not None or (config.space not in SPACES and ":" not in config.space):
        raise SearchError("workers > 1 starts processes from the config alone: name the space "
                          "in the registry or as 'pkg.module:function' and use the built-in "
                          "evaluator (or start search_worker yourself in each process)")
    if config.storage is None and config.run_dir is None:
        raise SearchError("workers > 1 needs a storage they can share: set run_dir (SQLite / "
                          "'journal') or storage")
    ctx = mp.get_context("spawn")  # not fork: torch's thread pools do not survive a fork
    procs = [ctx.Process(target=_worker_main, args=(config.to_dict(), owner)) for _ in range(n)]
    for p in procs:
        p.start()
    return procs


def _resolve_space(config: SearchConfig, model) -> Space:
    if config.space == "prune":
        if model is None:
            raise SearchError("space='prune' searches per-layer ratios of a trained model: "
                              "pass model=…")
        return prune_space(model, **config.space_options)

    return get_space(config.space, **config.space_options)
