"""The layering holds: imports point down the rooms of tests/layers.py (drawn in
docs/architecture.md), no cycle, no slimkit import hidden inside a function."""

from pathlib import Path

import slimkit
from tests import layers

ROOT = Path(slimkit.__file__).parent


def test_every_module_lives_in_a_room():
    imports = layers.scan(ROOT)
    for mod in imports.lines:
        assert layers.room_of(mod)  # KeyError names a module no room claims


def test_imports_point_down_and_form_no_cycle():
    imports = layers.scan(ROOT)
    up = [f"{a} → {b} ({layers.room_of(a)} imports {layers.room_of(b)}, a higher room)"
          for a, b in layers.upward(imports)]
    assert not up, "upward imports:\n" + "\n".join(up)
    assert not layers.cycles(imports), layers.cycles(imports)


def test_no_slimkit_import_inside_a_function():
    sites = layers.scan(ROOT).inner_sites
    assert not sites, "move these to the module top: " + ", ".join(
        f"{f}:{line} ({name})" for f, line, name in sites)


def test_the_map_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "slimkit"
    (pkg / "quant").mkdir(parents=True)
    (pkg / "pipeline").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pipeline" / "__init__.py").write_text("")
    (pkg / "quant" / "__init__.py").write_text("from slimkit.pipeline import runner\n")
    (pkg / "pipeline" / "runner.py").write_text(
        "def f():\n    from slimkit.quant import x\n")
    imports = layers.scan(pkg)
    assert layers.upward(imports) == [("slimkit.quant", "slimkit.pipeline.runner")]
    assert layers.cycles(imports) == [["slimkit.pipeline.runner", "slimkit.quant"]]
    assert [name for _, _, name in imports.inner_sites] == ["slimkit.quant"]
