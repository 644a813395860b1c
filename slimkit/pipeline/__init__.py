"""The pipeline: one recipe runs prune → distill → quantize → export → benchmark on the user's
own model under an accuracy budget, resumable, with a report (`slimkit compress`)."""

from slimkit.pipeline.load import load_recipe, parse_recipe
from slimkit.pipeline.recipe import Recipe, RecipeError
from slimkit.pipeline.runner import check, compress

__all__ = ["Recipe", "RecipeError", "check", "compress", "load_recipe", "parse_recipe"]
