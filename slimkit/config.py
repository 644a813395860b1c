"""Config: the one typed config every technique and every recipe section is declared with.

A pydantic model, frozen, unknown keys refused, each field's docstring its documentation
(docs/recipes.md is generated from them). Built in Python, a bad value is a ConfigError
naming `Type.field`, the value and what is allowed; a recipe validates the same model and its
errors name the field's path (`stages[0].prune.ratio`). A recipe stage's config *is* the
technique's config plus the fields only the pipeline reads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic._internal._model_construction import ModelMetaclass

from slimkit.errors import ConfigError


class _Built(ModelMetaclass):
    """Construction in Python: positional arguments in field order, and a bad value a
    ConfigError. (Validation from data — a recipe — does not pass here: its errors keep
    pydantic's field paths.)"""

    def __call__(cls, *args, **kwargs):
        names = list(cls.model_fields)
        if len(args) > len(names):
            raise ConfigError(f"{cls.__name__} takes at most {len(names)} positional "
                              f"arguments ({', '.join(names)}), got {len(args)}")
        kwargs.update(zip(names, args, strict=False))
        try:
            return super().__call__(**kwargs)
        except ValidationError as e:
            raise ConfigError(explain(e, cls.__name__)) from None


class Config(BaseModel, metaclass=_Built):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              arbitrary_types_allowed=True)

    def replace(self, **changes) -> Config:
        """A copy with `changes`, validated again (model_copy would not validate)."""
        return type(self)(**{**self.model_dump(exclude_unset=True), **changes})


def explain(e: ValidationError, prefix: str = "") -> str:
    """One line per error: the field path (prefix.field[2].sub), the value, what is allowed.
    A value no member of a union accepts is one line naming the members."""
    out, unions = [], _unions(e.errors())
    for err in e.errors():
        loc = tuple(err["loc"])
        if loc[:-1] in unions:
            if unions[loc[:-1]] is None:
                continue  # said already
            members, unions[loc[:-1]] = unions[loc[:-1]], None
            out.append(f"{_path(prefix, loc[:-1])}={err['input']!r}: allowed "
                       + ", ".join(members))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        shown = f"={err['input']!r}" if loc and err["type"] != "missing" else ""
        out.append(f"{_path(prefix, loc)}{shown}: {msg}")
    return "; ".join(out)


def _path(prefix: str, loc: tuple) -> str:
    text = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc)
    return ".".join(x for x in (prefix, text.replace(".[", "[")) if x)


def _unions(errors: list) -> dict:
    """loc prefix → the union members that refused one value (two or more errors sharing a
    prefix and an input, differing in their last, member-naming element)."""
    groups: dict = {}
    for err in errors:
        loc = tuple(err["loc"])
        if len(loc) >= 2 and isinstance(loc[-1], str) and err["type"] not in (
                "extra_forbidden", "missing"):
            groups.setdefault((loc[:-1], repr(err["input"])), []).append(loc[-1])
    return {key[0]: [m.removeprefix("literal[").removesuffix("]") for m in members]
            for key, members in groups.items() if len(members) > 1}


__all__ = ["Config", "ConfigError", "explain"]
