"""docs/recipes.md is what the config models say: regenerated here and compared."""

from pathlib import Path

from slimkit.pipeline.docs import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"


def test_the_recipe_reference_is_generated_from_the_configs():
    assert DOC.read_text() == render(), (
        "docs/recipes.md is stale: python -m slimkit.pipeline.docs > docs/recipes.md")


def test_every_stage_and_section_is_documented_field_by_field():
    text = render()
    for kind in ("prune", "distill", "quantize", "mixed_precision", "export", "benchmark",
                 "search"):
        assert f"### `{kind}`" in text
    for line in text.splitlines():
        if line.startswith("| `") and "SearchConfig" not in line:
            cells = [c.strip() for c in line.split(" | ")]
            assert len(cells) < 5 or cells[-1].rstrip("|").strip(), f"no description: {line}"
