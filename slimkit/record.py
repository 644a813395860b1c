"""The one record slimkit keeps about a model it produced.

Everything slimkit knows about a compressed model lives here, in one typed object attached in
one place (`model.__dict__`, outside nn.Module's registries: not a submodule, not in the
state_dict):

  source    how to build the uncompressed structure: a factory `package.module:function` with
            kwargs, or the class
  steps     what was applied, in order, with the configs a reader — and `sk.load` — needs
  arch      how the structure differs from the source: new tensor shapes and module attributes
            (structured pruning)
  masks     unstructured / N:M sparsity masks (FQN → bool tensor)
  plan      the quantization plan: every layer's scheme, and why
  original  the uncompressed model (distillation's default teacher) — a reference, never
            copied, never saved
  reports   what each step reported (a PruneReport, an algorithm's report), in this process:
            a verb returns the model, and what happened is read here (`record.report`)

`sk.save` writes it into the artifact's manifest; `sk.load` replays the steps' structure on a
fresh source model and loads the weights. Each technique registers how to replay its step
(`rebuilds`), so this module imports nothing above it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

_KEY = "_slimkit_record"


@dataclass
class Step:
    kind: str  # "prune", "quantize", "sparsify", "distill", … — a key of REBUILDS, or info only
    config: dict = field(default_factory=dict)  # JSON-able
    note: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "config": self.config, "note": self.note}


@dataclass
class ModelRecord:
    source: dict | None = None  # {"factory": "pkg.mod:fn", "kwargs": {...}} | {"class": …}
    steps: list[Step] = field(default_factory=list)
    arch: dict = field(default_factory=lambda: {"shapes": {}, "attrs": {}})
    masks: dict = field(default_factory=dict)  # FQN → bool tensor
    plan: Any = None  # slimkit.quant.QuantPlan (typed loosely: quant sits above this module)
    original: nn.Module | None = None
    reports: list = field(default_factory=list)  # per step that made one; not saved

    @property
    def report(self):
        """The last step's report (sk.prune's PruneReport, qa.apply's AlgorithmReport, …)."""
        return self.reports[-1] if self.reports else None

    def add(self, kind: str, config: dict | None = None, note: str = "") -> Step:
        step = Step(kind, dict(config or {}), note)
        self.steps.append(step)
        return step

    def __deepcopy__(self, memo) -> ModelRecord:
        # a copied model shares the reference to its original (never duplicated in memory)
        out = ModelRecord(copy.deepcopy(self.source, memo), copy.deepcopy(self.steps, memo),
                          copy.deepcopy(self.arch, memo), copy.deepcopy(self.masks, memo),
                          copy.deepcopy(self.plan, memo), self.original, list(self.reports))
        memo[id(self)] = out
        return out

    def describe(self) -> str:
        lines = []
        if self.source:
            what = self.source.get("factory") or self.source.get("class")
            kw = self.source.get("kwargs") or {}
            args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
            lines.append(f"source: {what}({args})")
        for i, s in enumerate(self.steps, 1):
            lines.append(f"step {i}: {s.kind}" + (f" — {s.note}" if s.note else ""))
        if self.arch["shapes"]:
            lines.append(f"structure: {len(self.arch['shapes'])} tensors resized, "
                         f"{len(self.arch['attrs'])} modules with new attributes")
        if self.masks:
            lines.append(f"sparsity masks on {len(self.masks)} weights")
        if self.plan is not None:
            lines.append(str(self.plan))
        return "\n".join(lines) or "no slimkit steps: an ordinary model"


def record_of(model: nn.Module, create: bool = True) -> ModelRecord | None:
    """The model's record (created empty on first use unless create=False)."""
    rec = model.__dict__.get(_KEY)
    if rec is None and create:
        rec = model.__dict__[_KEY] = ModelRecord()
    return rec


def class_source(model: nn.Module) -> dict | None:
    """{"class": "package.module:QualName"} of an ordinary model (None for a traced one)."""
    cls = type(model)
    if cls.__module__.startswith("torch.fx"):
        return None
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "kwargs": {}}


def note_source(rec: ModelRecord, original: nn.Module) -> None:
    """Remember which class the compressed model came from, the first time a step runs."""
    if rec.source is None:
        rec.source = class_source(original)


def copy_model(model: nn.Module) -> nn.Module:
    """copy.deepcopy with the record carried over (a torch.fx GraphModule's own deepcopy keeps
    only its graph and submodules, not attributes such as this record)."""
    rec = record_of(model, create=False)
    out = copy.deepcopy(model)
    if rec is not None:
        set_record(out, copy.deepcopy(rec))
    return out


def set_record(model: nn.Module, record: ModelRecord) -> None:
    model.__dict__[_KEY] = record


def describe(model: nn.Module) -> str:
    """What slimkit did to `model`: source, steps, structure, masks, quantization plan."""
    rec = record_of(model, create=False)
    return "no slimkit steps: an ordinary model" if rec is None else rec.describe()


# ---- replaying a step's structure on a fresh model (sk.load) ---------------------------------
Rebuild = Callable[[nn.Module, Step, ModelRecord], nn.Module]
REBUILDS: dict[str, Rebuild] = {}


def rebuilds(kind: str):
    """Register how to rebuild the structure a step of `kind` leaves (no data, no training):
    rebuild(model, step, record) → the model with that structure (weights are loaded after)."""
    def register(fn: Rebuild) -> Rebuild:
        REBUILDS[kind] = fn
        return fn
    return register


# information-only steps (no structure to replay): the benchmark stage's 'deployment' — the
# fastest runtime for this model on the machine it was measured on
rebuilds("deployment")(lambda model, step, rec: model)


def step_module(kind: str) -> str | None:
    """The module that registered the rebuild of `kind`: what sk.load imports to find it (the
    artifact names it in the manifest, so it learns techniques only through registration)."""
    fn = REBUILDS.get(kind)
    return None if fn is None else fn.__module__


# ---- what the artifact keeps of a record field, and why a model cannot be saved -------------
Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]  # (to JSON, from JSON)
CODECS: dict[str, Codec] = {}
SAVE_CHECKS: list[Callable[[nn.Module], str | None]] = []


def codec(field_name: str, encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> None:
    """Register how the manifest writes and reads a record field (quant registers 'plan')."""
    CODECS[field_name] = (encode, decode)


def save_check(fn: Callable[[nn.Module], str | None]) -> Callable[[nn.Module], str | None]:
    """Register a reason a model cannot be saved (None: it can): a technique's own state."""
    SAVE_CHECKS.append(fn)
    return fn


__all__ = ["CODECS", "ModelRecord", "REBUILDS", "SAVE_CHECKS", "Step", "class_source", "codec",
           "copy_model", "describe", "note_source", "rebuilds", "record_of", "save_check",
           "set_record", "step_module"]
