"""The op-rule registry the dependency graph reads: rules.py and rules_layers.py register
into it (an op matched by its overload-packet name: "conv2d", "add")."""

from __future__ import annotations

from collections.abc import Callable

RULES: dict[str, Callable] = {}


def rule(*names: str):
    def register(fn):
        for n in names:
            RULES[n] = fn
        return fn
    return register


def shape(node) -> list[int]:
    return [int(s) for s in node.meta["val"].shape]


def arg(node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


__all__ = ["RULES", "arg", "rule", "shape"]
