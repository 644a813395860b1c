"""The built-in stages: importing a stage module registers it (registry.py)."""

from slimkit.pipeline import (
    stage_benchmark,
    stage_deploy,
    stage_distill,
    stage_mixed,
    stage_prune,
    stage_quantize,
    stage_search,
)

BUILTIN = (stage_benchmark, stage_deploy, stage_distill, stage_mixed, stage_prune,
           stage_quantize, stage_search)
