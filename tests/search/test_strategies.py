import random

import numpy as np
import pytest

from slimkit.search import SearchConfig, search_worker
from slimkit.search.strategies import (
    Controller,
    EvolutionConfig,
    ReinforceConfig,
    mutate,
    population,
    replay,
    tournament,
)
from tests.search.helpers import ScoreEvaluator, score, tiny_space


def test_tournament_picks_the_best_of_its_sample():
    pop = [((i,), float(f)) for i, f in enumerate([5, 1, 9, 3, 7, 2, 8, 4])]
    for seed in range(20):
        drawn = random.Random(seed).sample(pop, 3)  # the same draw the tournament makes
        assert tournament(pop, 3, random.Random(seed)) == max(drawn, key=lambda m: m[1])[0]


def test_aging_population_removes_the_oldest_and_skips_rejected():
    hist = [((i,), float(i)) for i in range(10)] + [((99,), None)]
    pop = population(hist, 4)
    assert [e for e, _ in pop] == [(6,), (7,), (8,), (9,)]  # 0..5 aged out, whatever their fitness
    assert population([((0,), 100.0), *hist[1:4]], 3)[0][0] == (1,)  # the best one ages out too


def test_mutation_changes_exactly_one_gene():
    space = tiny_space()
    rng = random.Random(0)
    for _ in range(50):
        enc = space.random(rng)
        child = mutate(space, enc, rng)
        assert sum(a != b for a, b in zip(enc, child, strict=True)) == 1
        space.decode(child)  # still valid


def test_reinforce_update_raises_the_rewarded_gene():
    ctl = Controller([3, 2], ReinforceConfig(lr=0.5, entropy=0.0))
    ctl.update((0, 0), 0.0)  # sets the baseline
    before = ctl.probs()
    ctl.update((2, 1), 1.0)  # better than the baseline: its choices get likelier
    after = ctl.probs()
    assert after[0][2] > before[0][2] and after[1][1] > before[1][1]
    assert after[0][0] < before[0][0]
    ctl.update((1, 0), -5.0)  # worse than the baseline: less likely
    assert ctl.probs()[0][1] < after[0][1]


def test_rank_advantage_is_the_centred_rank_so_an_outlier_counts_like_any_best():
    ctl = Controller([2], ReinforceConfig(lr=1.0, entropy=0.0, advantage="rank"))
    ctl.update((0,), 1.0)  # the first reward has no rank: no step
    assert np.allclose(ctl.probs()[0], [0.5, 0.5])
    ctl.update((1,), 2.0)  # the best so far: advantage +1
    big = Controller([2], ReinforceConfig(lr=1.0, entropy=0.0, advantage="rank"))
    big.update((0,), 1.0)
    big.update((1,), 1e6)  # an outlier moves the policy exactly as much
    assert np.allclose(ctl.probs()[0], big.probs()[0]) and ctl.probs()[0][1] > 0.5
    up = ctl.probs()[0][1]
    ctl.update((1,), 0.0)  # the worst so far: advantage −1
    assert ctl.probs()[0][1] < up


def test_reinforce_learns_a_toy_reward_and_entropy_slows_collapse():
    space = tiny_space()
    rng = random.Random(0)
    hist, ctl = [], None
    for _ in range(150):
        ctl = replay(space, hist, ReinforceConfig(lr=0.3, entropy=0.0))
        enc = ctl.sample(rng)
        hist.append((enc, score(enc)))
    p = ctl.probs()
    assert int(np.argmax(p[0])) == 2 and int(np.argmax(p[1])) == 2 and int(np.argmax(p[2])) == 0
    spread = replay(space, hist, ReinforceConfig(lr=0.3, entropy=1.0)).probs()
    assert max(spread[0]) < max(p[0])  # the entropy bonus keeps the distribution wider


def _run(strategy, n, run_dir):
    cfg = SearchConfig(strategy=strategy, n_trials=n, run_dir=run_dir, seed=3, storage="journal",
                       evolution=EvolutionConfig(population=4, sample=2), top_k=0)
    study = search_worker(cfg, tiny_space(), ScoreEvaluator())
    return [tuple(t.user_attrs["encoding"]) for t in study.get_trials()
            if t.state.name == "COMPLETE"]


@pytest.mark.parametrize("strategy", ["random", "evolution", "reinforce", "tpe"])
def test_resume_proposes_what_an_uninterrupted_search_would(tmp_path, strategy):
    straight = _run(strategy, 10, tmp_path / "a")
    _run(strategy, 6, tmp_path / "b")  # stop after 6 …
    resumed = _run(strategy, 10, tmp_path / "b")  # … a fresh sampler reads the storage
    if strategy == "tpe":  # TPE is rebuilt from the trials too; its draws are seeded per trial
        assert resumed[:6] == straight[:6]
    assert resumed == straight


def test_evolution_and_reinforce_beat_random_on_the_toy_landscape(tmp_path):
    # 36 candidates, 12 trials: no strategy repeats a finished candidate, so in a smaller
    # space random search covers too much of it to be beaten
    best = {}
    for s in ("random", "evolution", "reinforce"):
        runs = [max(score(e) for e in _run_seed(s, seed, tmp_path / f"{s}{seed}"))
                for seed in range(8)]
        best[s] = sum(runs) / len(runs)
    assert best["evolution"] > best["random"] and best["reinforce"] > best["random"]


def _run_seed(strategy, seed, run_dir):
    cfg = SearchConfig(strategy=strategy, n_trials=12, seed=seed, top_k=0,
                       evolution=EvolutionConfig(population=4, sample=2))
    study = search_worker(cfg, tiny_space((4, 8, 16, 32, 48, 64)), ScoreEvaluator())
    return [tuple(t.user_attrs["encoding"]) for t in study.get_trials()
            if t.state.name == "COMPLETE"]


def test_two_objective_fitness_is_the_hypervolume_contribution_on_the_front():
    from optuna.study import StudyDirection
    from optuna.trial import create_trial

    from slimkit.search.strategies import fitness

    # (accuracy ↑, latency ↓): a, b, c on the front — b alone in a wide gap, a and c close to
    # extremes; d dominated by b only, e dominated by a, b and d
    pts = {"a": (99.0, 2.0), "b": (95.0, 1.0), "c": (90.0, 0.1), "d": (94.0, 1.5),
           "e": (93.0, 2.5)}
    trials = [create_trial(values=list(v)) for v in pts.values()]
    fit = dict(zip(pts, fitness(trials, [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]),
                   strict=True))
    assert fit["d"] == -1.0 and fit["e"] == -3.0
    assert all(fit[k] > 0 for k in "abc")
    # exclusive contributions, objectives scaled to [0, 1], reference −0.1 beyond the worst:
    # b's box is the product of its gaps to its neighbours
    lo_a, lo_l = 90.0, -2.5  # minima of accuracy and −latency
    sa = lambda v: (v - lo_a) / 9.0  # noqa: E731
    sl = lambda v: (-v - lo_l) / 2.4  # noqa: E731
    assert fit["b"] == pytest.approx((sa(95) - sa(90)) * (sl(1.0) - sl(2.0)))
    assert fit["a"] == pytest.approx((sa(99) - sa(95)) * (sl(2.0) + 0.1))
    # one objective: the value itself, negated when minimised
    one = [create_trial(value=v) for v in (0.3, 0.1)]
    assert fitness(one, [StudyDirection.MINIMIZE]) == [-0.3, -0.1]
