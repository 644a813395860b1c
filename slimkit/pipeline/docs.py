"""docs/recipes.md, generated from the config models themselves (their fields, types,
defaults, bounds and docstrings), so the reference cannot drift from the code:

    python -m slimkit.pipeline.docs > docs/recipes.md

tests/pipeline/test_docs.py regenerates it and compares.
"""

from __future__ import annotations

import dataclasses
import types
import typing

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from slimkit.pipeline.load import STAGES
from slimkit.pipeline.recipe import Recipe

HEADER = """# Recipe reference

Every field a recipe may hold, generated from the typed configs the recipe is validated
against (`python -m slimkit.pipeline.docs > docs/recipes.md`; a test regenerates this file and
compares). A stage's config *is* its technique's config (`sk.PruneConfig`, `sk.QuantPreset`,
`DistillConfig`, the training `Schedule`) plus the fields only the pipeline reads. Unknown
keys are refused, and every error names the field's path and what is allowed.
"""


def _type(ann) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type(a) for a in args if a is not type(None)) + (
            " \\| null" if type(None) in args else "")
    if origin in (list, tuple):
        inner = ", ".join(_type(a) for a in args if a is not Ellipsis)
        return f"list of {inner}" if origin is list or Ellipsis in args else f"[{inner}]"
    if origin is dict:
        return "mapping"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _bounds(field: FieldInfo) -> str:
    marks = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "at least"}
    out = []
    for m in field.metadata:
        for attr, sign in marks.items():
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sign} {v}")
        if getattr(m, "pattern", None):
            out.append("pkg.mod:fn" if ":" in m.pattern else f"`{m.pattern}`")
    return ", ".join(out)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(its defaults)"
    if dataclasses.is_dataclass(value):
        return type(value).__name__
    return f"`{value!r}`".replace("|", "\\|")


def _text(field: FieldInfo) -> str:
    return " ".join((field.description or "").split()).replace("|", "\\|")


def _models(ann) -> list[type[BaseModel]]:
    """The config models a field's annotation holds (to document them below it)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in typing.get_args(ann) for m in _models(a)]


def section(title: str, model: type[BaseModel], level: int = 2, path: str = "") -> list[str]:
    """A model's fields as a table, then each nested config model's, titled by its path."""
    lines = [f"{'#' * level} {title}", ""]
    if model.__doc__ and model.__doc__.strip():
        lines += [" ".join(model.__doc__.split()), ""]
    lines += ["| field | type | default | bounds | meaning |", "| --- | --- | --- | --- | --- |"]
    nested = []
    for name, f in model.model_fields.items():
        lines.append(f"| `{name}` | {_type(f.annotation)} | {_default(f)} | {_bounds(f)} | "
                     f"{_text(f)} |")
        nested += [(f"{path}.{name}".lstrip("."), m) for m in _models(f.annotation)]
    lines.append("")
    for sub_path, sub in nested:
        lines += section(f"`{sub_path}`", sub, min(level + 1, 4), sub_path)
    return lines


def render() -> str:
    lines = [HEADER]
    lines += section("The top level", Recipe)
    lines += ["## stages", "",
              "A list; each entry is one mapping `- kind: {fields}`, run in order.", ""]
    for kind in sorted(STAGES):
        lines += section(f"`{kind}`", STAGES[kind].config, 3, kind)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
