"""Search strategies, all as Optuna samplers behind one registry, so every strategy runs through
ask-and-tell on one storage and several workers can share a study.

- random: uniform encodings.
- evolution: aging (regularized) evolution, Real et al. 2019: the population is the P most
  recent finished trials (the oldest leaves when a new one finishes), a tournament takes S of
  them at random and the best becomes the parent, whose child differs in one gene.
- reinforce: a controller with a categorical distribution per gene (softmax of its logits),
  REINFORCE updates with a moving-average baseline and an entropy bonus (Williams 1992;
  Zoph & Le 2017 without the RNN: genes are independent given the logits).
- tpe (default) and nsga2: Optuna's own samplers.

No strategy keeps state outside the storage: evolution reads its population from the finished
trials and REINFORCE replays its updates over them in trial order, so a resumed search (another
process, another machine) proposes exactly what an uninterrupted one would have; each trial's
random draws come from (seed, trial number).

Constraints are met where they are cheapest to meet: given the worker's `feasible` check
(params / MACs / predicted latency of the built candidate, no training), a custom strategy
draws again, up to `draws` times per trial, instead of spending a trial on a candidate the
runner would reject — or on one a finished trial already scored. A policy is then shaped
by trained candidates' metrics, not by how often it strayed past the constraint (with a
factorised policy, a penalty per rejection can push every gene towards its smallest
option). Only when no draw is feasible is the trial tried and rejected (user attr
'rejected'); such a rejection counts as the worst reward for REINFORCE (so a policy that
drifted past the constraint is pulled back) and is never a parent.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from optuna.samplers import BaseSampler, NSGAIISampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field, model_validator

from slimkit.config import Config
from slimkit.errors import check_choice
from slimkit.search.objectives import hypervolume
from slimkit.search.space import Space


class EvolutionConfig(Config):
    """Aging evolution (Real et al. 2019)."""

    population: int = 16
    """P: the most recent finished trials (also NSGA-II's population)."""
    sample: int = 4
    """S: tournament size."""

    @model_validator(mode="after")
    def _sizes(self):
        if not 2 <= self.sample <= self.population:
            raise ValueError(f"need 2 ≤ sample ≤ population, got sample={self.sample}, "
                             f"population={self.population}")
        return self


class ReinforceConfig(Config):
    """REINFORCE over the encoding's choices (Williams 1992; Zoph & Le 2017)."""

    lr: float = Field(0.3, gt=0)
    """Step on the logits per finished trial (advantage normalised to ~±1)."""
    baseline_decay: float = Field(0.9, ge=0, lt=1)
    """Moving average of the reward (and of its squared deviation)."""
    entropy: float = Field(0.02, ge=0)
    """Bonus weight: keeps the distribution from collapsing early."""
    penalize_rejected: bool = True
    """A candidate rejected by a constraint counts as the worst reward seen so far (true), or
    is left out (false: only trained candidates' metrics shape the policy)."""
    advantage: Literal["baseline", "rank"] = "baseline"
    """baseline: (reward − moving average) / moving std; rank: the reward's centred rank among
    all rewards so far, in [−1, 1] (a noisy outlier moves no more than any other)."""


# ---- history: what every custom strategy reads from storage ------------------------------------
def fitness(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[float]:
    """One number per COMPLETE trial, higher is better. One objective: its value (negated when
    minimised). Several (SMS-EMOA's selection, Beume et al. 2007): a trial on the Pareto front
    scores its exclusive hypervolume contribution (> 0; objectives scaled to [0, 1] over the
    trials, reference just beyond the worst), a dominated one minus the number of trials that
    dominate it. So parents come from the front, and among them from where it is sparse — a
    tie-break on the first objective instead pulled every parent to the accurate end, whose
    points add the least hypervolume (measured: random search's level)."""
    sign = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
    vals = np.array([[s * v for s, v in zip(sign, t.values, strict=True)] for t in trials])
    if len(directions) == 1 or len(trials) == 0:
        return [float(v[0]) for v in vals]
    dominated_by = [int(np.sum(np.all(vals >= v, axis=1) & np.any(vals > v, axis=1)))
                    for v in vals]
    front = [i for i, d in enumerate(dominated_by) if d == 0]
    lo, hi = vals.min(axis=0), vals.max(axis=0)
    scaled = (vals - lo) / np.where(hi > lo, hi - lo, 1.0)  # maximise each, in [0, 1]
    pts = [scaled[i].tolist() for i in front]  # only the front bounds the volume
    up, ref = ["maximize"] * len(directions), [-0.1] * len(directions)
    total = hypervolume(pts, up, ref)
    gain = {i: total - hypervolume(pts[:k] + pts[k + 1:], up, ref) for k, i in enumerate(front)}
    return [gain[i] if i in gain else -float(d) for i, d in enumerate(dominated_by)]


def history(study: Study, space: Space) -> list[tuple[tuple[int, ...], float | None]]:
    """(encoding, fitness) of finished trials in trial-number order; fitness None: rejected by
    a constraint before training. Failed trials (errors, lost workers) are left out."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                      TrialState.FAIL))
    # a rejection is PRUNED with one objective, FAIL (+ 'rejected') with several
    trials = sorted((t for t in trials if t.state != TrialState.FAIL or "rejected" in
                     t.user_attrs), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    fit = dict(zip((t.number for t in complete), fitness(complete, study.directions),
                   strict=True))
    names = {g.name for g in space.genes}
    return [(space.from_params(t.params), fit.get(t.number)) for t in trials
            if names <= set(t.params)]


class SpaceSampler(BaseSampler):
    """Base of the custom strategies: proposes a whole encoding at once (relative sampling)."""

    def __init__(self, space: Space, seed: int = 0) -> None:
        self.space, self.seed = space, seed
        self.feasible: Callable[[tuple[int, ...]], bool] | None = None  # set by the worker
        self.draws = 1

    def constrain(self, feasible: Callable[[tuple[int, ...]], bool] | None,
                  draws: int) -> None:
        """Redraw a proposal that `feasible` refuses, up to `draws` draws per trial."""
        self.feasible, self.draws = feasible, max(1, draws)

    def rng(self, number: int) -> random.Random:
        return random.Random(f"slimkit:{self.seed}:{number}")  # str seeds hash stably (sha512)

    def infer_relative_search_space(self, study, trial):
        return self.space.distributions()

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        hist = history(study, self.space)
        # a candidate's score is a function of its encoding (candidate_seed): proposing one
        # already finished wastes the trial — measured, REINFORCE repeated 12–31 of 60
        seen, done = {e for e, _ in hist}, {e for e, f in hist if f is not None}

        def new_and_feasible(e: tuple[int, ...]) -> bool:
            return e not in seen and (self.feasible is None or self.feasible(e))

        draw = self.proposer(hist)
        rng = self.rng(trial.number)
        enc, fallback = draw(rng), None
        for _ in range(self.draws - 1):
            if new_and_feasible(enc):
                break
            fallback = fallback or (enc if enc in done else None)
            enc = draw(rng)
        else:  # out of draws: a repeat that met the constraints beats a rejection
            if fallback is not None and not new_and_feasible(enc):
                enc = fallback
        return {g.name: i for g, i in zip(self.space.genes, enc, strict=True)}

    def sample_independent(self, study, trial, param_name, param_distribution):
        # only reached for a parameter outside the space (a user's extra suggest call)
        rng = self.rng(trial.number)
        return param_distribution.to_external_repr(
            rng.randrange(len(param_distribution.choices)) if hasattr(param_distribution,
                                                                      "choices")
            else rng.randint(param_distribution.low, param_distribution.high))

    def proposer(self, hist) -> Callable[[random.Random], tuple[int, ...]]:
        """Draws encodings given the history (read once per trial, however many draws)."""
        return lambda rng: self.propose(hist, rng)

    def propose(self, hist, rng: random.Random) -> tuple[int, ...]:
        return self.proposer(hist)(rng)


class RandomStrategy(SpaceSampler):
    def propose(self, hist, rng):
        return self.space.random(rng)


# ---- aging evolution -------------------------------------------------------------------------
def population(hist, size: int) -> list[tuple[tuple[int, ...], float]]:
    """The `size` most recent finished (not rejected) trials: older ones have aged out."""
    done = [(e, f) for e, f in hist if f is not None]
    return done[-size:]


def tournament(pop, sample: int, rng: random.Random) -> tuple[int, ...]:
    """The fittest of `sample` members drawn without replacement."""
    return max(rng.sample(pop, sample), key=lambda m: m[1])[0]


def mutate(space: Space, enc: tuple[int, ...], rng: random.Random) -> tuple[int, ...]:
    """`enc` with one gene (among those with a choice) set to another option."""
    free = [i for i, g in enumerate(space.genes) if len(g.options) > 1]
    if not free:
        return enc
    i = rng.choice(free)
    new = rng.choice([j for j in range(len(space.genes[i].options)) if j != enc[i]])
    return enc[:i] + (new,) + enc[i + 1:]


class EvolutionStrategy(SpaceSampler):
    def __init__(self, space: Space, seed: int = 0, config: EvolutionConfig | None = None):
        super().__init__(space, seed)
        self.cfg = config or EvolutionConfig()

    def propose(self, hist, rng):
        pop = population(hist, self.cfg.population)
        if len(pop) < self.cfg.population:  # the initial population is random
            return self.space.random(rng)
        return mutate(self.space, tournament(pop, self.cfg.sample, rng), rng)


# ---- REINFORCE ---------------------------------------------------------------------------------
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class Controller:
    """Independent categorical distributions, one per gene, trained by REINFORCE."""

    def __init__(self, sizes: Sequence[int], config: ReinforceConfig | None = None) -> None:
        self.cfg = config or ReinforceConfig()
        self.logits = [np.zeros(n) for n in sizes]
        self.baseline: float | None = None
        self.var = 0.0  # moving average of (reward − baseline)²: normalises the advantage
        self.seen: list[float] = []  # every reward so far (rank advantage)

    def probs(self) -> list[np.ndarray]:
        return [_softmax(z) for z in self.logits]

    def sample(self, rng: random.Random) -> tuple[int, ...]:
        return tuple(int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right")
                         .clip(0, len(p) - 1)) for p in self.probs())

    def update(self, enc: Sequence[int], reward: float) -> None:
        """One REINFORCE step: logits += lr·(Â·∇log π(enc) + β·∇H)."""
        if self.baseline is None:
            self.baseline = reward
        adv = reward - self.baseline
        self.seen.append(reward)
        if self.cfg.advantage == "rank":
            adv_n = self._rank(reward)
        else:
            adv_n = adv / math.sqrt(self.var) if self.var > 0 else float(np.sign(adv))
            adv_n = max(-3.0, min(3.0, adv_n))
        for z, a in zip(self.logits, enc, strict=True):
            p = _softmax(z)
            grad_logp = -p
            grad_logp[a] += 1.0  # ∂ log p_a / ∂ z = onehot(a) − p
            logp = np.log(p + 1e-12)
            grad_h = -p * (logp - np.dot(p, logp))  # ∂H/∂z for H = −Σ p log p
            z += self.cfg.lr * (adv_n * grad_logp + self.cfg.entropy * grad_h)
        d = self.cfg.baseline_decay
        self.var = d * self.var + (1 - d) * adv * adv
        self.baseline = d * self.baseline + (1 - d) * reward


    def _rank(self, reward: float) -> float:
        """Centred rank of `reward` among the rewards so far, in [−1, 1] (0 for the first)."""
        n = len(self.seen)
        if n < 2:
            return 0.0
        below = sum(r < reward for r in self.seen) + 0.5 * (self.seen.count(reward) - 1)
        return 2.0 * below / (n - 1) - 1.0


def replay(space: Space, hist, config: ReinforceConfig | None = None) -> Controller:
    """The controller after the updates of every finished trial, in trial order; a rejected
    candidate counts as the worst reward seen so far (unless penalize_rejected=False)."""
    ctl = Controller([len(g.options) for g in space.genes], config)
    worst = None
    for enc, fit in hist:
        if fit is None:
            if worst is None or not ctl.cfg.penalize_rejected:
                continue  # nothing to compare with yet
            fit = worst
        worst = fit if worst is None else min(worst, fit)
        ctl.update(enc, fit)
    return ctl


class ReinforceStrategy(SpaceSampler):
    def __init__(self, space: Space, seed: int = 0, config: ReinforceConfig | None = None):
        super().__init__(space, seed)
        self.cfg = config or ReinforceConfig()

    def proposer(self, hist):
        return replay(self.space, hist, self.cfg).sample


# ---- Optuna's samplers, seeded per trial ---------------------------------------------------------
class PerTrialSeeded(BaseSampler):
    """Wraps an Optuna sampler so each trial's draws come from (seed, trial number): a resumed
    study does not replay the draws of the first trials. The wrapped samplers keep their
    state in the storage (TPE: the trials; NSGA-II: generations in system attrs)."""

    def __init__(self, make: Callable[[int], BaseSampler], seed: int = 0) -> None:
        self.make, self.seed = make, seed
        self._inner: dict[int, BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number not in self._inner:
            self._inner = {trial.number: self.make(self.seed * 1_000_003 + trial.number)}
        return self._inner[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._for(trial).after_trial(study, trial, state, values)


def _tpe(space, seed, evo, rl):
    return PerTrialSeeded(lambda s: TPESampler(seed=s, multivariate=True, constant_liar=True),
                          seed)


def _nsga2(space, seed, evo, rl):
    return PerTrialSeeded(lambda s: NSGAIISampler(population_size=evo.population, seed=s), seed)


STRATEGIES: dict[str, Callable[..., BaseSampler]] = {
    "random": lambda space, seed, evo, rl: RandomStrategy(space, seed),
    "evolution": lambda space, seed, evo, rl: EvolutionStrategy(space, seed, evo),
    "reinforce": lambda space, seed, evo, rl: ReinforceStrategy(space, seed, rl),
    "tpe": _tpe,
    "nsga2": _nsga2,
}


def make_sampler(name: str, space: Space, seed: int = 0, evolution: EvolutionConfig | None = None,
                 reinforce: ReinforceConfig | None = None) -> BaseSampler:
    check_choice("SearchConfig.strategy", name, STRATEGIES)
    return STRATEGIES[name](space, seed, evolution or EvolutionConfig(),
                            reinforce or ReinforceConfig())
