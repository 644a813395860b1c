"""The package declares what it uses, uses what it declares, and builds without warnings."""

import ast
import re
import warnings
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]
# distribution name → the module it is imported as (when they differ)
IMPORT_NAME = {"scikit-learn": "sklearn", "pyyaml": "yaml", "py-cpuinfo": "cpuinfo"}


def _imports() -> set[str]:
    found = set()
    for path in (ROOT / "slimkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_every_declared_dependency_is_imported():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    used = _imports()
    for dep in deps:
        name = re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower()
        module = IMPORT_NAME.get(name, name.replace("-", "_"))
        assert module in used, f"{dep} is declared in pyproject.toml but slimkit never imports it"


def test_pyproject_applies_without_setuptools_warnings():
    from setuptools.config import pyprojecttoml
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pyprojecttoml.apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert [str(w.message).splitlines()[0] for w in caught] == []
