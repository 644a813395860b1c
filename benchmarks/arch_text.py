"""Real English sentences for the MiniLM benchmark: the prose of installed packages' docstrings.

Read with `ast` from the source files (nothing is imported or executed), split into sentences,
kept when they read as prose (6–40 words, a capital first letter, a full stop, few symbols),
de-duplicated. Train and evaluation sentences come from *different* packages, so the model
is evaluated on text it never distilled on. (slimkit/data/text.py, written on another branch,
will do this in the library; this file stands in until it lands.)
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

TRAIN_PACKAGES = ("torch", "transformers", "numpy", "onnx")
EVAL_PACKAGES = ("sklearn", "scipy", "pydantic", "optuna", "matplotlib")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_BAD = re.compile(r"[=<>_`{}\[\]|\\@#$%^*~/]|\.\.|::|https?|\d{3,}")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _docstrings(path: Path):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def _sentences(doc: str):
    for para in doc.split("\n\n"):
        text = " ".join(para.split())
        for s in _SPLIT.split(text):
            words = s.split()
            if not 6 <= len(words) <= 40 or not s[0].isupper() or not s.endswith("."):
                continue
            if _BAD.search(s) or sum(c.isalpha() or c == " " for c in s) < 0.93 * len(s):
                continue
            yield s


def sentences(packages: tuple[str, ...], limit: int) -> list[str]:
    """Up to `limit` distinct prose sentences from the docstrings of `packages`, in a fixed
    order (files sorted; sentences taken round-robin over packages)."""
    per: list[list[str]] = []
    seen: set[str] = set()
    for name in packages:
        root = _package_dir(name)
        found: list[str] = []
        if root is not None:
            for f in sorted(root.rglob("*.py")):
                if "test" in f.parts[-2] or f.name.startswith("test"):
                    continue
                for doc in _docstrings(f):
                    for s in _sentences(doc):
                        if s not in seen:
                            seen.add(s)
                            found.append(s)
                if len(found) >= limit:
                    break
        per.append(found)
    out: list[str] = []
    i = 0
    while len(out) < limit and any(i < len(p) for p in per):
        out += [p[i] for p in per if i < len(p)]
        i += 1
    return out[:limit]


if __name__ == "__main__":
    tr, ev = sentences(TRAIN_PACKAGES, 4000), sentences(EVAL_PACKAGES, 1000)
    print(len(tr), len(ev))
    print("\n".join(tr[:5] + ev[:5]))
