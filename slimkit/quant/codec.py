"""Quantization specs and plans ⇄ JSON, for the artifact's manifest.

Only the types registered here can come back (no pickle, no import by name): a manifest can
describe a scheme, never make slimkit run code.
"""

from __future__ import annotations

import dataclasses

from slimkit.errors import ConfigError
from slimkit.quant.granularity import PerChannel, PerGroup, PerTensor, PerToken
from slimkit.quant.nonuniform import NonUniformScheme
from slimkit.quant.observers import MSE, Entropy, MinMax, MovingAverage, Percentile
from slimkit.quant.plan import PlanEntry, QuantPlan
from slimkit.quant.qscheme import QScheme
from slimkit.quant.spec import ActQuant, LayerQuant, WeightQuant
from slimkit.record import codec

TYPES = {t.__name__: t for t in (QScheme, NonUniformScheme, PerTensor, PerChannel, PerGroup,
                                 PerToken, MinMax, MovingAverage, Percentile, MSE, Entropy,
                                 WeightQuant, ActQuant, LayerQuant)}


def to_json(obj):
    """A registered dataclass (nested) → plain dicts with a "type" key; None stays None."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    name = type(obj).__name__
    if name not in TYPES or not dataclasses.is_dataclass(obj):
        raise ConfigError(f"cannot write {obj!r} to a manifest: known types are {sorted(TYPES)}")
    return {"type": name, **{f.name: to_json(getattr(obj, f.name))
                             for f in dataclasses.fields(obj)}}


def from_json(d):
    if d is None or isinstance(d, bool | int | float | str):
        return d
    if not isinstance(d, dict) or d.get("type") not in TYPES:
        got = d.get("type") if isinstance(d, dict) else type(d).__name__
        raise ConfigError(f"manifest holds an unknown quantization type {got!r}; known: "
                          f"{sorted(TYPES)}")
    cls = TYPES[d["type"]]
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(d) - names - {"type"}
    if extra:
        raise ConfigError(f"manifest {d['type']} has unknown fields {sorted(extra)}")
    return cls(**{k: from_json(v) for k, v in d.items() if k != "type"})


def plan_to_json(plan: QuantPlan) -> dict:
    """Entries refer to a list of distinct specs (most layers share one)."""
    specs: list = []

    def entry(e: PlanEntry) -> dict:
        spec = to_json(e.spec)
        if spec not in specs:
            specs.append(spec)
        return {"name": e.name, "module_type": e.module_type, "spec": specs.index(spec),
                "reason": e.reason}

    entries = [entry(e) for e in plan.entries]
    tensors = [entry(e) for e in plan.tensors]
    return {"config_name": plan.config_name, "specs": specs, "entries": entries,
            "tensors": tensors, "notes": list(plan.notes), "target": plan.target}


def plan_from_json(d: dict) -> QuantPlan:
    specs = d["specs"]

    def entry(e: dict) -> PlanEntry:
        i = e["spec"]
        if not isinstance(i, int) or not 0 <= i < len(specs):
            raise ConfigError(f"manifest plan entry {e.get('name')!r} refers to spec {i!r}; "
                              f"the plan holds {len(specs)}")
        return PlanEntry(e["name"], e["module_type"], from_json(specs[i]), e["reason"])

    return QuantPlan(d["config_name"], tuple(entry(e) for e in d["entries"]),
                     tuple(entry(e) for e in d["tensors"]), tuple(d["notes"]), d.get("target"))


codec("plan", plan_to_json, plan_from_json)  # the artifact writes a record's plan through it
