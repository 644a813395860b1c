"""run_search end to end on real digits (tiny budgets), and the bad-input paths."""

import json

import pytest
import torch
from torch.utils.data import Subset

from slimkit.search import (
    Constraint,
    LatencyConfig,
    ProxyConfig,
    SearchConfig,
    SearchData,
    SearchError,
    SupernetConfig,
    get_space,
    run_search,
    search_data,
    search_worker,
)
from slimkit.search.storage import tally
from tests.search.helpers import ScoreEvaluator, failing_space, tiny_space


@pytest.fixture(scope="module")
def small_data():
    d = search_data("digits")
    cut = lambda ds, n: Subset(ds, list(range(n)))  # noqa: E731
    return SearchData(cut(d.train, 256), cut(d.val, 128), cut(d.full_train, 256), d.test)


def test_run_search_returns_trained_exported_benchmarked_models(tmp_path, small_data):
    cfg = SearchConfig(strategy="random", n_trials=3, seed=1, run_dir=tmp_path,
                       storage="journal", proxy=ProxyConfig(epochs=1, data_fraction=0.5),
                       retrain=ProxyConfig(epochs=1), top_k=1,
                       constraints=(Constraint("macs", 3_000_000),))
    res = run_search(cfg, data=small_data)
    assert len(res.completed) == 3
    assert all(t.costs["macs"] <= 3_000_000 for t in res.completed)
    assert len(res.candidates) == 1
    best = res.candidates[0]
    assert isinstance(best.model, torch.nn.Module)
    assert best.model(torch.randn(4, 1, 8, 8)).shape == (4, 10)
    assert 0 <= best.test_accuracy <= 100 and best.measured_latency_ms > 0
    assert best.search_values[0] == max(t.values[0] for t in res.completed)
    assert (tmp_path / best.onnx_path.split("/")[-1]).exists()
    d = json.loads(json.dumps(res.to_dict()))  # plain data, no modules
    assert len(d["search_curve"]) == 3 and d["pareto"]["axes"] == ["accuracy", "macs"]
    assert "median ms" in res.bench


def test_a_failing_builder_fails_its_trial_and_the_search_goes_on():
    cfg = SearchConfig(strategy="random", n_trials=8, seed=0)
    study = search_worker(cfg, failing_space(), ScoreEvaluator())
    t = tally(study)
    assert t.complete == 8 and t.failed >= 1
    errs = [tr.user_attrs["error"] for tr in study.get_trials() if "error" in tr.user_attrs]
    assert errs and all("ValueError: width 4 is not supported" in e for e in errs)


def test_constraints_reject_before_training_and_impossible_ones_are_named():
    ev = ScoreEvaluator()
    cfg = SearchConfig(strategy="tpe", n_trials=5, constraints=(Constraint("params", 600),))
    study = search_worker(cfg, tiny_space(), ev)
    t = tally(study)
    assert t.complete == 5 and t.rejected > 0
    assert len(ev.calls) == 5  # rejected candidates were never evaluated
    assert all(tr.user_attrs["costs"]["params"] <= 600 for tr in study.get_trials()
               if tr.state.name == "COMPLETE")
    never = SearchConfig(strategy="random", n_trials=2, max_rejections=30,
                         constraints=(Constraint("macs", 1e9), Constraint("params", 10)))
    with pytest.raises(SearchError, match=r"no candidate satisfies the constraint params ≤ 10: "
                                          r"30 candidates in a row.*lowest params seen was"):
        search_worker(never, tiny_space(), ScoreEvaluator())


@pytest.mark.parametrize("strategy", ["random", "evolution", "reinforce"])
def test_custom_strategies_redraw_infeasible_candidates_instead_of_spending_trials(strategy):
    limit = (Constraint("params", 600),)
    redraw = search_worker(SearchConfig(strategy=strategy, n_trials=12, constraints=limit),
                           tiny_space(), ScoreEvaluator())
    once = search_worker(SearchConfig(strategy=strategy, n_trials=12, constraints=limit,
                                      feasible_draws=1), tiny_space(), ScoreEvaluator())
    assert tally(redraw).complete == tally(once).complete == 12
    assert tally(redraw).rejected == 0 < tally(once).rejected
    assert all(t.user_attrs["costs"]["params"] <= 600 for t in redraw.get_trials())


@pytest.mark.parametrize("strategy", ["evolution", "reinforce"])
def test_custom_strategies_do_not_spend_trials_on_finished_candidates(strategy):
    """24 distinct candidates in the tiny space, 12 trials: every completed one is new."""
    study = search_worker(SearchConfig(strategy=strategy, n_trials=12), tiny_space(),
                          ScoreEvaluator())
    encs = [tuple(t.user_attrs["encoding"]) for t in study.get_trials()
            if t.state.name == "COMPLETE"]
    assert len(encs) == 12 and len(set(encs)) == 12


def test_multi_objective_nsga2_gives_a_front():
    cfg = SearchConfig(strategy="nsga2", n_trials=10, objectives=("accuracy", "params"))
    from slimkit.search.results import collect

    study = search_worker(cfg, tiny_space(), ScoreEvaluator())
    res = collect(cfg, tiny_space(), study, 0.0)
    front = res.pareto()
    assert front and res.hypervolume() > 0
    for t in res.completed:  # nothing completed dominates a front member
        for f in front:
            assert not (t.values[0] >= f.values[0] and t.values[1] <= f.values[1]
                        and t.values != f.values)


def test_latency_constraint_uses_the_layer_table(tmp_path):
    cfg = SearchConfig(strategy="random", n_trials=3, constraints=(Constraint("latency_ms", 50),),
                       latency=LatencyConfig(batch=2, cache_dir=str(tmp_path)))
    study = search_worker(cfg, tiny_space(), ScoreEvaluator())
    lat = [t.user_attrs["costs"]["latency_ms"] for t in study.get_trials()]
    assert all(v is not None and v > 0 for v in lat)
    assert list(tmp_path.glob("layer-latency-*.json"))
    # the table was calibrated on this space first (10 networks, kept per space in the cache)
    from slimkit.latency.table import LatencyTable
    from slimkit.search.latency import calibration_note, calibration_scope

    table = LatencyTable(batch=2, cache_dir=tmp_path, scope=calibration_scope(tiny_space()))
    assert table.calibration_info["networks"] == 10
    t = study.get_trials()[0]
    model = tiny_space().build_model(tuple(t.user_attrs["encoding"]))
    assert lat[0] == pytest.approx(table.predict(model, tiny_space().example()).total_ms)
    assert "calibrated on 10 networks" in calibration_note(table)
    assert not LatencyTable(batch=2, cache_dir=tmp_path).calibrated  # the unscoped key: not


def test_latency_calibration_skips_encodings_that_do_not_build():
    from slimkit.search.latency import _random_networks

    nets = _random_networks(failing_space(), 6, seed=0)
    widths = {x.out_features for m, _ in nets.values() for x in m.modules()
              if isinstance(x, torch.nn.Linear)}
    assert len(nets) == 6 and 4 not in widths


def test_prune_space_searches_per_layer_ratios(small_data):
    from slimkit.models import DigitsCNN
    from slimkit.search.prune_space import prune_space

    torch.manual_seed(0)
    model = DigitsCNN(0.5)
    space = prune_space(model, torch.randn(1, 1, 8, 8), ratios=(0.0, 0.5))
    assert [g.name for g in space.genes] == ["features.0.0", "features.1.0", "features.3.0"]
    small = space.build_model((1, 1, 1))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in
                                                            model.parameters())
    cfg = SearchConfig(space="prune", strategy="evolution", n_trials=2, top_k=0,
                       proxy=ProxyConfig(epochs=0), objectives=("loss", "params"))
    res = run_search(cfg, space=space, data=small_data)
    assert len(res.completed) == 2
    assert all(t.values[0] == t.metrics["loss"] > 0 for t in res.completed)
    assert all(t.costs["params"] <= sum(p.numel() for p in model.parameters())
               for t in res.completed)


def test_supernet_scores_subnets_with_shared_weights(small_data):
    from slimkit.search.supernet import LARGEST, SMALLEST, DigitsSupernet, SupernetEvaluator

    space = get_space("digits")
    net = DigitsSupernet()
    x = torch.randn(3, 1, 8, 8)
    assert net(x, LARGEST).shape == net(x, SMALLEST).shape == (3, 10)
    ev = SupernetEvaluator(net, SupernetConfig(calib_batches=1), small_data)
    enc = space.random(__import__("random").Random(0))
    before = net.stages[0][0].bn.running_mean.clone()
    scores = ev(space, enc)
    assert 0 <= scores["accuracy"] <= 100
    assert not torch.equal(before, net.stages[0][0].bn.running_mean)  # recalibrated
    # the loss is the validation cross-entropy of that sub-network (recalibrated as above)
    from slimkit.search.spaces import digits_arch
    from slimkit.search.supernet import _Active

    xs, ys = zip(*small_data.val, strict=True)
    with torch.no_grad():
        out = _Active(net, digits_arch(space.decode(enc))).eval()(torch.stack(xs))
    y = torch.stack(ys)
    assert scores["loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(out, y)),
                                           rel=1e-5)
    assert scores["accuracy"] == pytest.approx(100.0 * float((out.argmax(1) == y).float().mean()))
    with pytest.raises(SearchError, match="evaluator='supernet' covers the 'digits' space"):
        SupernetEvaluator.for_space(tiny_space(), SearchConfig(evaluator="supernet"),
                                    small_data)


def test_plots_are_png():
    from slimkit.search.plots import curve_png, pareto_png
    from slimkit.search.results import collect

    cfg = SearchConfig(strategy="random", n_trials=4, objectives=("accuracy", "params"))
    res = collect(cfg, tiny_space(), search_worker(cfg, tiny_space(), ScoreEvaluator()), 0.0)
    for png in (pareto_png(res), curve_png(res)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_search_is_a_public_verb_that_loads_optuna_only_when_used():
    import subprocess
    import sys

    code = ("import sys, slimkit as sk\n"
            "assert 'optuna' not in sys.modules\n"
            "from slimkit.search import run_search, SearchConfig, SearchError\n"
            "assert sk.run_search is run_search and sk.SearchConfig is SearchConfig\n"
            "assert sk.SearchError is SearchError and sk.search.get_space('digits')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
