"""'package.module:attr' names — how recipes and artifacts name the code that builds a model."""

from __future__ import annotations

import importlib


def import_attr(spec: str):
    """The object `spec` names. Raises ImportError / AttributeError (callers say what it was
    for and how to go on)."""
    mod_name, _, attr = spec.partition(":")
    obj = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
