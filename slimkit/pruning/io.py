"""Save a pruned model so it reloads into a fresh instance of its class, no pruning code path.

    slimkit.pruning.save(small, "small.pt")
    small = slimkit.pruning.load("small.pt", ResNet18())   # resized to the saved shapes

The file holds the state_dict and the architecture record surgery kept (new tensor shapes and
module attributes such as out_channels, groups, num_heads); it loads with weights_only=True.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from slimkit.errors import SlimkitError

FORMAT = "slimkit.pruned/1"


def save(model: nn.Module, path: str | Path) -> Path:
    path = Path(path)
    arch = model.__dict__.get("slimkit_arch", {"shapes": {}, "attrs": {}})
    blob = {"format": FORMAT, "arch": arch, "state_dict": model.state_dict()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves half a file under the real name
    return path


def load(path: str | Path, model: nn.Module) -> nn.Module:
    """Resize `model` (a fresh, unpruned instance of the saved model's class) in place to the
    saved architecture, load the weights, and return it."""
    blob = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise SlimkitError(f"{path} is not a slimkit pruned-model file ({FORMAT})")
    modules = dict(model.named_modules())
    arch = blob["arch"]
    for name, shape in arch["shapes"].items():
        owner, _, attr = name.rpartition(".")
        m = modules.get(owner)
        if m is None or not hasattr(m, attr):
            raise SlimkitError(f"{path}: {type(model).__name__} has no tensor '{name}'; load "
                               f"into an instance of the class the file was saved from")
        old = getattr(m, attr)
        new = torch.empty(shape, dtype=old.dtype)
        if isinstance(old, nn.Parameter):
            m._parameters[attr] = nn.Parameter(new, requires_grad=old.requires_grad)
        else:
            m._buffers[attr] = new
    for owner, attrs in arch["attrs"].items():
        for k, v in attrs.items():
            setattr(modules[owner], k, tuple(v) if isinstance(v, list) else v)
    model.load_state_dict(blob["state_dict"])
    model.__dict__["slimkit_arch"] = arch
    return model
