"""sk.prune: rank, choose, cut — on a copy; the caller's model is never left half-pruned.

    small = sk.prune(model, sk.PruneConfig(target_macs=0.5, round_to=8), x)
    print(sk.record_of(small).report)        # per layer: params, MACs, channels before → after

Structured granularities go through the dependency graph (deps.py) and come back physically
smaller; unstructured / N:M come back the same shape with masks (unstructured.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from slimkit.batch import as_args, evaluating
from slimkit.errors import ConfigError, SlimkitError
from slimkit.graph.deps import DependencyGraph, Group
from slimkit.graph.modules import name_matches
from slimkit.pruning import unstructured as unst
from slimkit.pruning.config import PruneConfig, PruneRule
from slimkit.pruning.depth import prune_depth
from slimkit.pruning.importance import group_scores, masking_scores, task_loss, taylor_grads
from slimkit.pruning.report import LayerReport, PruneReport
from slimkit.pruning.rounding import LatencyRounding, Multiple, measured
from slimkit.pruning.surgery import apply_arch, cut
from slimkit.record import ModelRecord, Step, copy_model, note_source, rebuilds, record_of
from slimkit.task import Task

CONV = nn.modules.conv._ConvNd


class PruneError(SlimkitError):
    """The pruned model does not run, or the request cannot be met."""


def prune(model: nn.Module, config: PruneConfig, example_inputs, data: Iterable | None = None,
          loss_fn: Callable | None = None, task: Task | str = "classification") -> nn.Module:
    """Prune a copy of `model`. data: batches (batch.py's contract) for the importances that
    measure a loss (taylor, mask); loss_fn(model, inputs, target), default the task's loss.
    A result that removes less than half of the target is a PruneError naming why, unless
    config.allow_partial. Returns the pruned model; its record holds the PruneReport
    (`sk.record_of(small).report`)."""
    if not isinstance(config, PruneConfig):
        raise ConfigError(f"config must be a PruneConfig, got {type(config).__name__}")
    loss_fn = loss_fn or task_loss(task)
    _check_rules(model, config)
    reference = _output_shapes(model, example_inputs)
    step: tuple = ("prune", {"config": config.model_dump(mode="json"),
                             "structured": config.structured})
    if config.granularity == "depth":
        pruned = copy_model(model)
        blocks, report = prune_depth(model, pruned, config, example_inputs, data, loss_fn)
        step = ("drop_blocks", {"config": config.model_dump(mode="json"), "blocks": blocks})
    elif config.structured:
        pruned, report = _structured(model, config, example_inputs, data, loss_fn)
    else:
        pruned = copy_model(model)
        report = _unstructured(pruned, config, data, loss_fn)
    if _output_shapes(pruned, example_inputs) != reference:
        raise PruneError("the pruned model's output shapes differ from the original's")
    _reached(config, report)
    rec = record_of(pruned)
    note_source(rec, model)
    if rec.original is None:
        rec.original = model  # a reference: distillation's default teacher
    note = f"{config.granularity}: params {report.params_before:,} → {report.params_after:,}"
    if report.macs_before:
        note += f", MACs {report.macs_before:,} → {report.macs_after:,}"
    rec.add(*step, note)
    rec.reports.append(report)
    return pruned


@rebuilds("prune")
def _rebuild(model: nn.Module, step: Step, rec: ModelRecord) -> nn.Module:
    """Structured cuts: the recorded shapes and attributes, all at the first structured prune
    (the record holds their sum). Unstructured / N:M: same shapes, masks come with the weights."""
    first = next((s for s in rec.steps if s.kind == "prune" and s.config.get("structured")),
                 None)
    return apply_arch(model, rec.arch) if step is first else model


# ---- structured ------------------------------------------------------------------------------
MAX_RETRIES = 48  # swin_b / swin_s need more than 16 (one per block)


def _structured(model, cfg: PruneConfig, example, data, loss_fn):
    """Plan on the graph, cut a copy, run it. A module whose forward builds shapes from its
    own attributes (x.reshape(n, self.hidden_dim, -1)) breaks when its channels go; then the
    groups around that module are kept whole and the cut is retried on a fresh copy."""
    graph = DependencyGraph.build(model, example, cfg.unknown_ops)
    modules = dict(model.named_modules())
    groups = [g for g in graph.groups() if _wanted(g, cfg.granularity, modules)]
    grads = taylor_grads(model, data, loss_fn) if cfg.importance == "taylor" else None
    if cfg.importance == "mask":
        scores = {g.leaf: masking_scores(model, graph, g, data, loss_fn) for g in groups}
    else:
        scores = {g.leaf: group_scores(model, graph, g, cfg.importance, grads, cfg.seed)
                  for g in groups}
    kept_whole: list[str] = []
    sites: dict[str, str] = {}  # module kept whole → the line whose shape broke
    owning = {x.module for g in groups for x in g.members}
    for _ in range(MAX_RETRIES):
        live = [g for g in groups if not _touches(g, kept_whole, owning)]
        fixed, free = _rule_ratios(live, cfg)
        try:
            counts = _plan(graph, live, scores, fixed, free, cfg)
        except PruneError as e:
            if not kept_whole:
                raise
            why = "; ".join(f"'{m}' at {sites[m]}" for m in kept_whole)
            raise PruneError(f"{e}: kept whole because their forward builds shapes the cut "
                             f"breaks — {why}") from e
        keep = {g.leaf: scores[g.leaf].topk(counts[g.leaf]).indices.sort().values
                for g in live if counts[g.leaf] < g.size}
        pruned = copy_model(model)
        cut(pruned, graph, keep)
        try:
            _output_shapes(pruned, example)
            culprit = graph.shape_mismatch(pruned, example, {k: len(v) for k, v in keep.items()})
            if culprit is None:
                break
            if not any(_touches(g, [culprit], owning) for g in live):
                raise PruneError(f"module '{culprit}' regroups pruned channels with a "
                                 f"constant shape; skip it with PruneRule(pattern, skip=True)")
            sites[culprit] = "an op's output shape differs from the cut's (a constant shape)"
        except PruneError:
            raise
        except Exception as e:  # noqa: BLE001 — any failure means the cut broke the forward
            culprit, site = _failing_site(e, pruned)
            if culprit is None or not any(_touches(g, [culprit], owning) for g in live):
                raise PruneError(
                    f"the pruned model fails at forward ({type(e).__name__}: {e}"
                    f"{f'; at {site}' if site else ''}); a module computes shapes from "
                    f"constants the graph cannot see (e.g. x.view(B, 512)): skip it with "
                    f"PruneRule(pattern, skip=True)") from e
            sites[culprit] = site or f"{type(e).__name__}: {e}"
        kept_whole.append(culprit)
    else:
        raise PruneError(f"gave up after {MAX_RETRIES} retries; kept whole: {kept_whole}")
    kept = {leaf: len(k) for leaf, k in keep.items()}
    rep = _report(cfg, graph, groups, keep, _layer_stats(model, graph, {}),
                  _layer_stats(model, graph, kept))
    # what a ratio asks of each group: a rule's ratio, nothing where a rule skips it (the
    # user's choice), the configured ratio elsewhere — kept-whole groups included (not chosen)
    asked = {g.leaf: fixed.get(g.leaf, cfg.ratio or 0.0) for g in groups}
    rep.channels_removed = (sum(g.size - kept.get(g.leaf, g.size) for g in groups),
                            sum(g.size * asked[g.leaf] for g in groups))
    rep.notes += [f"kept whole the channels of module '{m or '(top level)'}': its forward "
                  f"builds a shape the cut breaks, at {sites[m]}" for m in kept_whole]
    rep.notes += [f"kept whole by a rule (skip): {', '.join(g.owners) or g.leaf}"
                  for g in live if fixed.get(g.leaf) == 0.0]
    return pruned, rep


def _touches(g: Group, modules: list[str], owning: set[str]) -> bool:
    """g has a tensor owned by one of `modules` — directly, or, for a module that owns no
    group tensor itself (a container), through its submodules."""
    for m in modules:
        if any(x.module == m for x in g.members):
            return True
        if m and m not in owning and any(x.module.startswith(f"{m}.") for x in g.members):
            return True
    return False


def _failing_site(e: BaseException, model: nn.Module) -> tuple[str | None, str | None]:
    """(name of the innermost module of `model` whose forward raised, 'file:line: code' of
    the line in its forward that raised)."""
    import linecache

    names = {id(m): n for n, m in model.named_modules()}
    found, site, tb = None, None, e.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if id(obj) in names and isinstance(obj, nn.Module):
            found = names[id(obj)]
            code = tb.tb_frame.f_code
            line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
            site = f"{code.co_filename}:{tb.tb_lineno}: {line}"
        tb = tb.tb_next
    return found, site


def _wanted(g: Group, granularity: str, modules: dict) -> bool:
    if granularity == "head":
        return g.is_head
    if granularity == "channel" and g.is_head:
        return True  # whole heads are channels of attention (never a part of each head:
        # a smaller head_dim would change SDPA's 1/√d scaling)
    in_split = any(g.leaf in [g.graph.spaces.find(p) for p in parts]
                   for _, parts in g.graph.head_splits)
    if in_split or not g.owners:
        return False
    types = [type(modules.get(o)) for o in g.owners]
    if granularity == "filter":
        return any(issubclass(t, CONV) for t in types)
    if granularity == "neuron":
        return any(issubclass(t, nn.Linear) for t in types)
    return True


def last_rule(rules: tuple[PruneRule, ...], names: list[str]) -> PruneRule | None:
    """The last rule whose pattern matches one of `names` (general rules first, exceptions
    after — the same precedence as QuantConfig rules)."""
    hit = None
    for r in rules:
        if any(name_matches(r.pattern, n) for n in names):
            hit = r
    return hit


def _rule_ratios(groups: list[Group], cfg: PruneConfig):
    """(leaf → fixed ratio from a rule, or 0 for a skip; leaves the target decides)."""
    fixed, free = {}, []
    for g in groups:
        hit = last_rule(cfg.rules, g.owners)
        if hit is None:
            free.append(g)
        else:
            fixed[g.leaf] = 0.0 if hit.skip else hit.ratio
    return fixed, free


def _count(n: int, ratio: float, rnd, leaf: int) -> int:
    return rnd.round(leaf, n, int(round(n * (1.0 - ratio))))


def _plan(graph, groups, scores, fixed, free, cfg: PruneConfig) -> dict[int, int]:
    """Channels each group keeps, meeting the ratio or the MACs / params target."""
    rnd, _ = rounding_for(graph, groups, cfg.round_to)
    base = {leaf: _count(graph.spaces[leaf].size, r, rnd, leaf) for leaf, r in fixed.items()}
    sizes = {g.leaf: g.size for g in free}
    if cfg.scope == "uniform":
        def at(x: float) -> dict[int, int]:
            return {**base, **{leaf: _count(n, x, rnd, leaf) for leaf, n in sizes.items()}}
    else:
        norm = {g.leaf: scores[g.leaf] / scores[g.leaf].mean().clamp_min(1e-12) for g in free}

        def at(x: float) -> dict[int, int]:  # x: global threshold on normalised importance
            out = dict(base)
            for leaf, s in norm.items():
                n = sizes[leaf]
                cut_n = min(int((s < x).sum()), int(math.floor(cfg.max_ratio * n)))
                out[leaf] = _count(n, cut_n / n, rnd, leaf)
            return out
    if not free:
        return at(0.0)
    if cfg.ratio is not None and cfg.scope == "uniform":
        return at(cfg.ratio)
    measure, goal = _objective(graph, sizes, cfg)
    hi = cfg.max_ratio if cfg.scope == "uniform" else float(
        max(s.max() for s in norm.values())) + 1e-6
    lo = 0.0
    for _ in range(40):  # the smallest cut that reaches the goal
        mid = (lo + hi) / 2
        if measure(at(mid)) >= goal:
            hi = mid
        else:
            lo = mid
    counts = at(hi)
    if measure(counts) < goal - 1e-3:
        raise PruneError(f"cannot remove {goal:.0%} of the model's {_what(cfg)} with "
                         f"max_ratio={cfg.max_ratio} per group; the frozen layers weigh too much")
    return _give_back(counts, sizes, measure, goal, rnd)


def _give_back(counts, sizes, measure, goal, rnd) -> dict[int, int]:
    """Rounding overshoots the target; return channels (one rounding step at a time,
    most-cut groups first) while the goal still holds, so every tool is compared at the same
    MACs."""
    improved = True
    while improved:
        improved = False
        for leaf in sorted(sizes, key=lambda k: counts[k] / sizes[k]):
            more = rnd.up(leaf, sizes[leaf], counts[leaf])
            if more > counts[leaf]:
                trial = {**counts, leaf: more}
                if measure(trial) >= goal:
                    counts, improved = trial, True
    return counts


def rounding_for(graph, groups, round_to) -> tuple:
    """(the rounding of kept counts, notes for the report): Multiple(n) for an int,
    this machine's measured steps for LatencyRounding — computed once per graph (the
    planner's retries reuse it)."""
    if not isinstance(round_to, LatencyRounding):
        return Multiple(round_to), []
    key = (id(graph), tuple(sorted(g.leaf for g in groups)), round_to)
    if _ROUNDING_CACHE.get("key") != key:
        _ROUNDING_CACHE.clear()
        _ROUNDING_CACHE.update(key=key, value=measured(graph, groups, round_to), graph=graph)
    return _ROUNDING_CACHE["value"]


_ROUNDING_CACHE: dict = {}  # one entry: the graph being planned (held, so its id stays unique)


def _objective(graph, sizes, cfg: PruneConfig):
    """(counts → fraction removed, goal) for the configured target."""
    if cfg.target_macs is not None:
        m0 = graph.macs()
        return (lambda c: 1 - graph.macs(c) / m0), cfg.target_macs
    if cfg.target_params is not None:
        p0 = graph.params()
        return (lambda c: 1 - graph.params(c) / p0), cfg.target_params
    total = sum(sizes.values())
    return (lambda c: sum(sizes[k] - c[k] for k in sizes) / total), cfg.ratio - 1e-9


def _what(cfg: PruneConfig) -> str:
    return "MACs" if cfg.target_macs is not None else "params" if cfg.target_params else "channels"


# ---- unstructured / N:M --------------------------------------------------------------------------
def _unstructured(model, cfg: PruneConfig, data, loss_fn) -> PruneReport:
    layers = {n: m for n, m in model.named_modules() if isinstance(m, unst.PRUNABLE)}
    ratios, skipped = {}, set()
    for n in layers:
        r = cfg.ratio if cfg.granularity != "nm" else None
        rule = last_rule(cfg.rules, [n])
        if rule is not None:
            r = None if rule.skip else rule.ratio
            if rule.skip:
                skipped.add(n)
        ratios[_weight_name(n)] = r
    if all(r is None for r in ratios.values()) and cfg.granularity != "nm":
        raise ConfigError("every layer is skipped: nothing to prune")
    grads = taylor_grads(model, data, loss_fn) if cfg.importance == "taylor" else None
    scores = {}
    for n, m in layers.items():
        name = _weight_name(n)
        if (cfg.granularity != "nm" and ratios[name] is None) or n in skipped:
            continue
        scores[name] = unst.weight_scores(m.weight.detach(), cfg.importance,
                                          grads[name] if grads else None, cfg.seed)
    rep = PruneReport(cfg.granularity)
    if cfg.granularity == "nm":
        odd = [n for n, s in scores.items() if s[0].numel() % cfg.m]
        rep.notes += [f"{n} kept dense: its {scores[n][0].numel()} inputs per output do not "
                      f"divide by m={cfg.m}" for n in odd]
        masks = {n: unst.nm_mask(s, cfg.n, cfg.m) for n, s in scores.items() if n not in odd}
    elif cfg.granularity == "block":
        masks = _block_masks(scores, ratios, cfg, rep)
    else:
        masks = unst.magnitude_masks(scores, {n: ratios[n] for n in scores}, cfg.scope)
    unst.apply_masks(model, masks)
    for n, mask in masks.items():
        p = mask.numel()
        module = n.rsplit(".", 1)[0] if "." in n else ""
        rep.layers.append(LayerReport(module, p, int(mask.sum()), 0, 0,
                                      f"{1 - float(mask.float().mean()):.1%} zeros"))
        rep.params_before += p
        rep.params_after += int(mask.sum())
    rep.groups = rep.groups_pruned = len(masks)
    asked = sum(m.weight.numel() * (ratios[_weight_name(n)] or 0.0)
                for n, m in layers.items())
    rep.channels_removed = (rep.params_before - rep.params_after, asked)
    rep.notes += [f"{n} skipped by a rule" for n in sorted(skipped)]
    return rep


def _weight_name(module: str) -> str:
    return f"{module}.weight" if module else "weight"  # a bare layer is the model itself


def _block_masks(scores: dict, ratios: dict, cfg: PruneConfig, rep: PruneReport) -> dict:
    odd = [n for n, s in scores.items() if not unst.block_divides(s, cfg.block)]
    rep.notes += [f"{n} kept dense: its {tuple(scores[n].reshape(len(scores[n]), -1).shape)} "
                  f"matrix does not tile by {cfg.block}" for n in odd]
    tiles = {n: unst.block_scores(s, cfg.block) for n, s in scores.items() if n not in odd}
    kept = unst.magnitude_masks(tiles, {n: ratios[n] for n in tiles}, cfg.scope)
    return {n: unst.expand_blocks(t, cfg.block, scores[n].shape) for n, t in kept.items()}


# ---- checks and reports --------------------------------------------------------------------------
PARTIAL = 0.5  # below this share of its target, a prune is refused unless allow_partial


def _reached(cfg: PruneConfig, rep: PruneReport) -> None:
    """Record how much of the target the cut reached; refuse a cut that reached too little."""
    key = next(k for k in ("ratio", "target_macs", "target_params")
               if getattr(cfg, k) is not None) if cfg.granularity != "nm" else None
    if key is None:
        rep.target, rep.reached = f"{cfg.n}:{cfg.m}", 1.0 if rep.groups_pruned else 0.0
    else:
        goal = getattr(cfg, key)
        rep.target = f"{key} {goal:g}"
        rep.reached = _removed(cfg, key, rep) / goal if goal else 1.0
    if rep.reached >= PARTIAL or cfg.allow_partial:
        return
    why = list(rep.notes) or ["no group of this granularity was found"]
    raise PruneError(
        f"pruning reached {rep.reached:.0%} of its target ({rep.target}, granularity "
        f"{cfg.granularity}): {rep.groups_pruned} of {rep.groups} groups cut. Why: "
        + "; ".join(why) + ". Fix the cause (a rule, unknown_ops, a PruneRule skip on the "
        "module that builds shapes), or accept the partial result with allow_partial=True "
        "(recipe: allow_partial: true)")


def _removed(cfg: PruneConfig, key: str, rep: PruneReport) -> float:
    """The share of the model removed, in the target's own terms."""
    if key == "target_macs":
        return 1 - rep.macs_after / rep.macs_before if rep.macs_before else 0.0
    if key == "target_params":
        return 1 - rep.params_after / rep.params_before if rep.params_before else 0.0
    if cfg.granularity == "depth":
        return rep.groups_pruned / rep.groups if rep.groups else 0.0
    removed, asked = rep.channels_removed  # asked: channels the ratio (and rules) ask for
    return cfg.ratio * removed / asked if asked else 0.0
def _check_rules(model: nn.Module, cfg: PruneConfig) -> None:
    names = [n for n, _ in model.named_modules()]
    for r in cfg.rules:
        if not any(name_matches(r.pattern, n) for n in names):
            raise ConfigError(f"PruneRule pattern '{r.pattern}' matches no module of "
                              f"{type(model).__name__} (names look like {names[1:4]})")


def _output_shapes(model: nn.Module, example):
    with evaluating(model):
        out = model(*as_args(example))
    return torch.utils._pytree.tree_map(
        lambda t: tuple(t.shape) if isinstance(t, torch.Tensor) else t, out)


def _layer_stats(model, graph: DependencyGraph, kept: dict[int, int]) -> dict[str, list[int]]:
    """module → [params, MACs, output channels] under the given kept counts."""
    stats: dict[str, list[int]] = {}
    for name, dims in graph.param_dims.items():
        if graph.kinds[name] != "param":
            continue
        module = name.rsplit(".", 1)[0] if "." in name else ""
        s = stats.setdefault(module, [0, 0, 0])
        s[0] += math.prod(graph.spaces.size_after(d, kept) for d in dims)
        if graph.weight_out_dims.get(name) is not None:
            s[2] = graph.spaces.size_after(dims[graph.weight_out_dims[name]], kept)
    for module, _, term in graph.cost_terms:
        s = stats.setdefault(module, [0, 0, 0])
        s[1] += math.prod(graph.spaces.size_after(d, kept) for d in term)
    return stats


def _report(cfg, graph, groups, keep, before, after) -> PruneReport:
    rep = PruneReport(cfg.granularity, groups=len(groups), groups_pruned=len(keep))
    for module, (p0, m0, c0) in before.items():
        p1, m1, c1 = after[module]
        ch = f"{c0} → {c1}" if c0 else ""
        rep.layers.append(LayerReport(module, p0, p1, m0, m1, ch))
    rep.params_before, rep.params_after = graph.params(), graph.params(
        {leaf: len(k) for leaf, k in keep.items()})
    rep.macs_before, rep.macs_after = graph.macs(), graph.macs(
        {leaf: len(k) for leaf, k in keep.items()})
    if graph.frozen_ops:
        rep.notes.append("kept whole around ops without rules: " + "; ".join(graph.frozen_ops))
    if _ROUNDING_CACHE.get("graph") is graph:  # round_to="auto": which counts, and why
        rep.notes += _ROUNDING_CACHE["value"][1]
    return rep
