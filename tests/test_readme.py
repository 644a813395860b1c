"""Every Python block of the README runs as written: in order, in one fresh process, in an
empty directory (slow: it quantizes, prunes, trains and searches on the real digits)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slimkit.pipeline import parse_recipe

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.slow
def test_the_python_blocks_run_as_written(tmp_path):
    script = "\n\n".join(_blocks("python"))
    assert len(_blocks("python")) >= 8
    (tmp_path / "readme.py").write_text(script)
    env = {**os.environ, "SLIMKIT_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(README.parent)}
    res = subprocess.run([sys.executable, "readme.py"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]


def test_the_recipe_blocks_are_valid_recipes():
    recipes = [b for b in _blocks("yaml") if "stages:" in b]
    assert recipes
    for text in recipes:  # structure and values; factories are the reader's own
        parse_recipe(yaml.safe_load(text), "README")
