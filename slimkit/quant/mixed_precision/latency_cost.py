"""Mixed precision's latency cost: what one layer costs in milliseconds on this machine's
runtime for a quantization choice, from the per-layer table (bench/layer_latency.py).

    cost = LatencyCost.for_model(model, example, runtime="ort")   # measures what is missing
    cfg, result = auto_config(model, calib, budget=0.6 * cost.float_ms(), cost=cost,
                              schemes={"float": None, "int8": int8})

A layer left float costs its fp32 kernel; int8 weights with uint8 activations cost the int8
kernel in slimkit's QDQ form (the one the exporter writes). Other schemes (4-bit weights,
weight-only) have no kernel in the table and are refused by name. The chosen point's sum is
only the layers' kernels: `check` measures the quantized model end to end and reports the
prediction's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from slimkit.deploy import export
from slimkit.errors import ConfigError
from slimkit.latency.measure import Candidate, measure
from slimkit.latency.spec import LayerSpec, layer_specs
from slimkit.latency.table import LatencyTable
from slimkit.quant.config import QuantConfig
from slimkit.quant.flows import quantize
from slimkit.quant.mixed_precision.auto import config_from_choice
from slimkit.quant.spec import LayerQuant


def precision_of(scheme: LayerQuant | None) -> str:
    """'fp32' for a float layer, 'int8' for 8-bit weights with 8-bit input activations."""
    if scheme is None or scheme.weight is None:
        return "fp32"
    w, a = scheme.weight.scheme, scheme.input
    if getattr(w, "bits", None) == 8 and a is not None and a.scheme.bits == 8 and not a.dynamic:
        return "int8"
    raise ConfigError(f"cost=latency: the scheme {scheme} has no kernel in the per-layer "
                      "latency table (it measures float and int8 weights with 8-bit static "
                      "activations); choose among schemes float and int8, or use cost=size")


@dataclass
class LatencyCost:
    """cost(layer_name, scheme) → ms (a CostModel, slimkit.quant.mixed_precision.costs)."""

    specs: dict[str, LayerSpec]
    tables: dict[str, LatencyTable]  # precision → table
    # this model's time outside the timed layers (attention matmuls, softmax, norms, Q/DQ)
    # all-float and all-int8, measured by fit_rest; None: the table's generic calibration
    rest_ms: tuple[float, float] | None = field(default=None)

    @classmethod
    def for_model(cls, model: nn.Module, example_inputs, runtime: str = "ort", batch: int = 1,
                  threads: int = 2, cache_dir=None) -> LatencyCost:
        specs = dict(layer_specs(model, example_inputs))
        tables = {p: LatencyTable(batch, threads, runtime, p, cache_dir)
                  for p in ("fp32", "int8")}
        for t in tables.values():  # one sweep per precision, cached per machine
            t.measure(specs.values())
        return cls(specs, tables)

    def __call__(self, layer_name: str, scheme: LayerQuant | None) -> float:
        spec = self.specs.get(layer_name)
        if spec is None:
            raise ConfigError(f"cost=latency: layer '{layer_name}' is not in the latency table "
                              "(it times Conv2d and Linear layers); use cost=size")
        return self.tables[precision_of(scheme)].lookup([spec])[0]

    def float_ms(self) -> float:
        return sum(self.tables["fp32"].lookup(list(self.specs.values())))

    def int8_ms(self) -> float:
        return sum(self.tables["int8"].lookup(list(self.specs.values())))

    def fit_rest_of(self, model: nn.Module, int8: LayerQuant, calib, float_file, out_file,
                    example_inputs, runtime: str, target="auto", threads: int = 2) -> tuple:
        """fit_rest with the model's all-int8 form made here: every timed layer `int8`,
        calibrated on `calib`, exported to `out_file` for `runtime`."""
        qc = config_from_choice({n: "int8" for n in self.specs}, {"int8": int8},
                                QuantConfig.w8a8())
        q = quantize(model, qc, calib=calib, progress=False, target=target)
        return self.fit_rest(float_file, export(q, example_inputs, out_file, runtime=runtime),
                             example_inputs, runtime, threads=threads)

    def fit_rest(self, float_file, int8_file, example_inputs, runtime: str, threads: int = 2,
                 rounds: int = 7) -> tuple[float, float]:
        """Measure the model all-float and all-int8 end to end (its ONNX files, the inputs at
        the table's batch): what they take beyond the layers' kernels is this network's rest
        — a transformer's attention, softmax and norms are not in the table."""
        res = measure([Candidate("float", float_file, runtime),
                         Candidate("int8", int8_file, runtime)], example_inputs,
                        rounds=rounds, threads=threads)
        f, i = (r.median_ms for r in res.rows)
        self.rest_ms = (f - self.float_ms(), i - self.int8_ms())
        return self.rest_ms

    def estimate(self, kernels_ms: float, n_int8: int) -> float:
        """The whole network's ms for a point whose layers sum to `kernels_ms`, n_int8 of them
        int8: + this model's rest (interpolated by the share of int8 layers) once fitted,
        else the table's generic calibration."""
        if self.rest_ms is None:
            t = self.tables["int8"]
            return t.total(kernels_ms, len(self.specs), t.weight_mb(self.specs.values()))
        f, i = self.rest_ms
        return kernels_ms + f + (i - f) * n_int8 / max(1, len(self.specs))

    def check(self, onnx_file, example_inputs, kernels_ms: float, n_int8: int, runtime: str,
              threads: int = 2, rounds: int = 7) -> dict:
        """A chosen point's estimate against the exported model measured end to end (the
        inputs at the table's batch size): the error of the latency cost."""
        res = measure([Candidate("chosen", onnx_file, runtime)], example_inputs,
                        rounds=rounds, threads=threads)
        measured = res.rows[0].median_ms
        estimate = self.estimate(kernels_ms, n_int8)
        return {"kernels_ms": kernels_ms, "estimate_ms": estimate, "measured_ms": measured,
                "error": (estimate - measured) / measured,
                "rest_fitted": self.rest_ms is not None}


__all__ = ["LatencyCost", "precision_of"]
