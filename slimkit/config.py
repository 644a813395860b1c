"""Config: the one typed config every technique and every recipe section is declared with.

A pydantic model, frozen, unknown keys refused, each field's docstring its documentation
(docs/recipes.md is generated from them). Built in Python, a bad value is a ConfigError
naming `Type.field`, the value and what is allowed; a recipe validates the same model and its
errors name the field's path (`stages[0].prune.ratio`). A recipe stage's config *is* the
technique's config plus the fields only the pipeline reads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from slimkit.errors import ConfigError


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True,
                              arbitrary_types_allowed=True)

    def __init__(self, **data) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise ConfigError(explain(e, type(self).__name__)) from None

    def replace(self, **changes) -> Config:
        """A copy with `changes`, validated again (model_copy would not validate)."""
        return type(self)(**{**self.model_dump(exclude_unset=True), **changes})


def explain(e: ValidationError, prefix: str = "") -> str:
    """One line per error: the field path (prefix.field[2].sub), the value, what is allowed."""
    out = []
    for err in e.errors():
        loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"])
        path = ".".join(x for x in (prefix, loc.replace(".[", "[")) if x)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        shown = f"={err['input']!r}" if loc and err["type"] != "missing" else ""
        out.append(f"{path}{shown}: {msg}")
    return "; ".join(out)


__all__ = ["Config", "ConfigError", "explain"]
