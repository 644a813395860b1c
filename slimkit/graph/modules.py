"""Module-tree helpers shared by every technique."""

from __future__ import annotations

import fnmatch

from torch import nn


def set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def name_matches(pattern: str, name: str) -> bool:
    """Glob on the qualified module name: 'features.*', '*.fc', 'layer?.0.conv1'."""
    return fnmatch.fnmatchcase(name, pattern)


def state_bytes(model: nn.Module) -> int:
    """Bytes of everything the model's state_dict holds (what a checkpoint costs)."""
    seen, total = set(), 0
    for t in model.state_dict().values():
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key not in seen:  # tied weights count once
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def tensor_names(model: nn.Module) -> dict[int, list[str]]:
    """id of each parameter and buffer → every qualified name it is held under (a tied
    weight, e.g. GPT-2's wte / lm_head, has several), in module order."""
    names: dict[int, list[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False),
                    *model.named_buffers(remove_duplicate=False)]:
        names.setdefault(id(t), []).append(name)
    return names
