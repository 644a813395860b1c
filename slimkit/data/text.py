"""Real English sentences, offline: the prose of docstrings shipped with Python and packages.

Sources are read as source files (ast, never imported: no side effects), in sorted path
order; docstrings are cut into paragraphs and sentences, and only sentences that read as
prose are kept (8–40 words, a capital first letter and a full stop, at least 85 % plain
words, nothing that looks like code: no `=`, brackets, backticks, calls `f(`, dotted names
`os.path`, doctest prompts, URLs). Duplicates (case-insensitive) are dropped.

The order is then the sentences' SHA-1 (stable, and it mixes topics), and the split is by
hash too: a sentence is in the evaluation part iff its hash falls in the first
`eval_fraction` of the range — disjoint by construction, and a sentence keeps its side when
the sources grow. The same Python version and packages give the same corpus on any machine.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from slimkit.errors import ConfigError

_SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages",
              "encodings", "lib2to3", "turtledemo"}
_CODE = re.compile(r"[=<>{}\[\]`_|\\#@$~^*]|\w\(|::|>>>|https?:|\w\.\w|\.\.\.|\s-\w|--")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*[,;:.!?]?$")
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass(frozen=True)
class TextSplits:
    calibration: tuple[str, ...]
    evaluation: tuple[str, ...]


def _files(source: str) -> list[Path]:
    if source == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        return sorted(p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(
            root).parts[:-1]))
    spec = importlib.util.find_spec(source)
    if spec is None:
        raise ConfigError(f"text source {source!r}: no such installed package or module; "
                          "use 'stdlib' or an importable package name")
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
        return sorted(p for r in roots for p in r.rglob("*.py")
                      if not _SKIP_DIRS & set(p.relative_to(r).parts[:-1]))
    return [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return []
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(
        n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
    return [d for d in (ast.get_docstring(n, clean=True) for n in nodes) if d]


def is_prose(s: str) -> bool:
    words = s.split()
    if not 8 <= len(words) <= 40 or not s[0].isupper() or not s.endswith("."):
        return False
    if _CODE.search(s) or any(c.isdigit() for c in s[:1]):
        return False
    plain = sum(bool(_WORD.match(w)) for w in words)
    return plain >= 0.85 * len(words)


def sentences_of(doc: str) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", doc):
        lines = para.splitlines()
        if any(ln.startswith((" ", "\t", ">>>", "..", ":")) for ln in lines):
            continue  # indented blocks, doctests, reST directives and field lists
        text = " ".join(ln.strip() for ln in lines)
        out += [s.strip() for s in _SPLIT.split(text) if is_prose(s.strip())]
    return out


def _digest(s: str) -> int:
    return int.from_bytes(hashlib.sha1(s.lower().encode()).digest()[:8], "big")


@functools.cache
def corpus(sources: tuple[str, ...] = ("stdlib",)) -> tuple[str, ...]:
    """Every prose sentence of the sources, deduplicated, in hash order."""
    seen, out = set(), []
    for src in sources:
        for path in _files(src):
            for doc in _docstrings(path):
                for s in sentences_of(doc):
                    key = s.lower()
                    if key not in seen:
                        seen.add(key)
                        out.append(s)
    return tuple(sorted(out, key=lambda s: (_digest(s), s)))


def text_splits(sources: tuple[str, ...] = ("stdlib",), eval_fraction: float = 0.2) -> TextSplits:
    """Disjoint calibration / evaluation sentences (each in hash order)."""
    if not 0.0 < eval_fraction < 1.0:
        raise ConfigError(f"eval_fraction={eval_fraction} must be in (0, 1)")
    cut = int(eval_fraction * 2**64)
    all_ = corpus(tuple(sources))
    return TextSplits(tuple(s for s in all_ if _digest(s) >= cut),
                      tuple(s for s in all_ if _digest(s) < cut))


__all__ = ["TextSplits", "corpus", "is_prose", "sentences_of", "text_splits"]
