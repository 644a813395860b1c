"""Channel spaces: which tensor dimensions share one index, as a union-find with structure.

Every dimension of every tensor in the traced graph points at a *space*. Ops couple dimensions
(a residual add makes two channel dims one space; a linear couples its input's last dim with
its weight's dim 1). A space is either

  leaf                  n atomic channels — the unit pruning removes
  cat(a, b, …)          the concatenation of parts (torch.cat, the pieces of a chunk)
  prod(a, b, …)         the row-major product of parts (flatten C×H×W, view E → heads × D)

so removing channel j of a leaf removes, in every coupled tensor dim, exactly the positions that
carry j. A space that must keep all its channels (a model input or output, a reduction over it,
an op the rules do not model) is *frozen*; coupling anything to it freezes that too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Space:
    size: int
    kind: str = "leaf"  # leaf | cat | prod
    parts: list[int] = field(default_factory=list)
    frozen: bool = False
    label: str = ""  # where it was born, for details()


class Spaces:
    def __init__(self) -> None:
        self.spaces: list[Space] = []
        self.parent: list[int] = []

    # ---- creation ----------------------------------------------------------------------------
    def new(self, size: int, frozen: bool = False, label: str = "") -> int:
        self.spaces.append(Space(int(size), frozen=frozen or size <= 1, label=label))
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def compose(self, kind: str, parts: list[int]) -> int:
        if len(parts) == 1:
            return parts[0]
        size = 0 if kind == "cat" else 1
        for p in parts:
            size = size + self[p].size if kind == "cat" else size * self[p].size
        i = self.new(size)
        self.spaces[i] = Space(size, kind, list(parts))
        return i

    # ---- union-find ---------------------------------------------------------------------------
    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def __getitem__(self, i: int) -> Space:
        return self.spaces[self.find(i)]

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        sa, sb = self.spaces[ra], self.spaces[rb]
        if sa.size != sb.size:
            raise AssertionError(f"coupling spaces of sizes {sa.size} and {sb.size}")
        if sa.kind == "leaf" and sb.kind != "leaf":
            ra, rb, sa, sb = rb, ra, sb, sa  # keep the structured one as the root
        self.parent[rb] = ra
        if sb.kind == "leaf":
            if sb.frozen:
                self.freeze(ra)
        elif sa.kind == sb.kind and [self[p].size for p in sa.parts] == [
                self[p].size for p in sb.parts]:
            for pa, pb in zip(sa.parts, sb.parts, strict=True):
                self.union(pa, pb)
        else:  # two different structures over one index: keep both whole
            self.freeze(ra)
            for p in sb.parts:
                self.freeze(p)

    def freeze(self, i: int) -> None:
        s = self[i]
        s.frozen = True
        for p in s.parts:
            self.freeze(p)

    # ---- refinement: give a space parts so that ops can address them -------------------------
    def refine(self, i: int, kind: str, sizes: list[int], label: str = "") -> list[int]:
        """Parts of space i with these sizes (cat) or factors (prod), creating them if i is a
        leaf. A space that already has other parts cannot be cut that way: frozen pieces."""
        s = self[i]
        if len(sizes) == 1:
            return [i]
        if s.kind == "leaf":
            parts = [self.new(n, frozen=s.frozen, label=label) for n in sizes]
            s.kind, s.parts = kind, parts
            return parts
        if s.kind == kind and [self[p].size for p in s.parts] == list(sizes):
            return list(s.parts)
        self.freeze(i)
        return [self.new(n, frozen=True, label=label) for n in sizes]

    # ---- reading ------------------------------------------------------------------------------
    def leaves(self, i: int) -> list[int]:
        s = self[i]
        if s.kind == "leaf":
            return [self.find(i)]
        return [leaf for p in s.parts for leaf in self.leaves(p)]

    def size_after(self, i: int, kept: dict[int, int]) -> int:
        s = self[i]
        if s.kind == "leaf":
            return kept.get(self.find(i), s.size)
        sizes = [self.size_after(p, kept) for p in s.parts]
        out = 0 if s.kind == "cat" else 1
        for n in sizes:
            out = out + n if s.kind == "cat" else out * n
        return out

    def keep_index(self, i: int, keep: dict[int, torch.Tensor]) -> torch.Tensor:
        """Positions of space i that survive when each leaf keeps the channels in `keep`."""
        s = self[i]
        if s.kind == "leaf":
            k = keep.get(self.find(i))
            return torch.arange(s.size) if k is None else k
        idx = [self.keep_index(p, keep) for p in s.parts]
        if s.kind == "cat":
            offsets = [0]
            for p in s.parts[:-1]:
                offsets.append(offsets[-1] + self[p].size)
            return torch.cat([k + o for k, o in zip(idx, offsets, strict=True)])
        out = idx[0]
        for p, k in zip(s.parts[1:], idx[1:], strict=True):
            out = (out[:, None] * self[p].size + k[None, :]).reshape(-1)
        return out

    def owner(self, i: int, leaf: int) -> torch.Tensor:
        """For each position of space i: which channel of `leaf` it carries (-1: none)."""
        s = self[i]
        if s.kind == "leaf":
            n = s.size
            return torch.arange(n) if self.find(i) == self.find(leaf) else torch.full((n,), -1)
        own = [self.owner(p, leaf) for p in s.parts]
        if s.kind == "cat":
            return torch.cat(own)
        out = own[0]
        for o in own[1:]:  # a position belongs to the leaf through whichever factor carries it
            out = torch.maximum(out[:, None], o[None, :]).reshape(-1)
        return out
