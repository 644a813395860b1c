import pytest
from click.testing import CliRunner

from slimkit.cli import main
from tests.pipeline.recipes import write


def _compress(recipe, out, *extra) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["compress", str(recipe), "--out", str(out), "--quiet",
                                    *extra])
    return res.exit_code, res.output


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """The small recipe, compressed once per session: (tmp, recipe, run dir, CLI output)."""
    tmp = tmp_path_factory.mktemp("compress")
    recipe = write(tmp)
    code, output = _compress(recipe, tmp / "run")
    assert code == 0, output
    return tmp, recipe, tmp / "run", output


def compressed(recipe, out, *extra) -> dict:
    """`slimkit compress` of `recipe` into `out`, which must succeed: its report.json."""
    import json

    code, output = _compress(recipe, out, *extra)
    assert code == 0, output
    return json.loads((out / "report.json").read_text())
