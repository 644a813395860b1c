"""Reading a recipe: YAML (yaml.safe_load) → the typed Recipe and each stage's typed config,
every error naming the field path and the allowed values."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from slimkit.pipeline.recipe import Recipe, RecipeError
from slimkit.pipeline.registry import STAGES, check_order
from slimkit.pipeline.stages import BUILTIN  # noqa: F401 — the built-in stages, registered


# ---- reading --------------------------------------------------------------------------------
def load_recipe(path: str | Path) -> tuple[Recipe, list]:
    """(recipe, [(stage type, typed stage config)]) or RecipeError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{path} is not valid YAML: {e}") from e
    return parse_recipe(raw, str(path))


def parse_recipe(raw, where: str = "recipe") -> tuple[Recipe, list]:
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: the top level must be a mapping with model, data, stages")
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        raise RecipeError(_format(e, where, Recipe)) from None
    stages = []
    for i, entry in enumerate(recipe.stages):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RecipeError(f"{where}: stages[{i}] must be one mapping like "
                              f"'- prune: {{...}}'; stage types: {sorted(STAGES)}")
        (kind, cfg), = entry.items()
        if kind not in STAGES:
            raise RecipeError(f"{where}: stages[{i}]: unknown stage type {kind!r}; allowed: "
                              f"{sorted(STAGES)}")
        try:
            stages.append((kind, STAGES[kind].config.model_validate(cfg or {})))
        except ValidationError as e:
            raise RecipeError(_format(e, where, STAGES[kind].config,
                                      prefix=f"stages[{i}].{kind}")) from None
    problem = check_order(stages, recipe)
    if problem:
        raise RecipeError(f"{where}: {problem}")
    return recipe, stages


def _format(e: ValidationError, where: str, model: type[BaseModel], prefix: str = "") -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
        loc = loc.replace(".[", "[")
        path = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; allowed here: {_allowed(model, err['loc'][:-1])}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path or '(top level)'}: {msg}")
    return f"{where}: " + "; ".join(lines)


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the sub-model at `loc` (best effort for nested sections)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        sub = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                    and issubclass(a, BaseModel)), None)
        if sub is None:
            break
        model = sub
    return sorted(model.model_fields)
