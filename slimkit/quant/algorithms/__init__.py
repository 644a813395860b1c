"""Advanced post-training quantization: each method a frozen config, one `apply` verb.

    from slimkit.quant import algorithms as qa
    fp = qa.apply(model, qa.CLE())                                   # float → float
    q = sk.quantize(fp, sk.QuantConfig.w4a4(), calib=calib)
    q = qa.apply(q, qa.AdaRound(), calib)                            # refine the rounding
    q = qa.apply(q, qa.BiasCorrection(), calib)
    print(sk.record_of(q).report)                                    # what the last one did
    q = sk.quantize(model, sk.QuantConfig.w4a4().with_algorithms(qa.CLE(), qa.AdaRound()),
                    calib)                                           # all at once
"""

from slimkit.quant.algorithms import steps as _steps  # noqa: F401, E402 — sk.load rebuilds
from slimkit.quant.algorithms.adaround import AdaRound
from slimkit.quant.algorithms.api import ALGORITHMS, NAMES, algorithm_from_dict, apply, ptq
from slimkit.quant.algorithms.awq import AWQ
from slimkit.quant.algorithms.bias_correction import BiasCorrection
from slimkit.quant.algorithms.cle import CLE
from slimkit.quant.algorithms.gptq import GPTQ
from slimkit.quant.algorithms.log2 import Log2Activations
from slimkit.quant.algorithms.report import AlgorithmReport, LayerResult, PTQReport
from slimkit.quant.algorithms.scaled import ScaledInputLinear
from slimkit.quant.algorithms.smoothquant import SmoothQuant

__all__ = [
    "ALGORITHMS", "AWQ", "CLE", "GPTQ", "NAMES", "AdaRound", "AlgorithmReport", "BiasCorrection",
    "LayerResult", "Log2Activations", "PTQReport", "ScaledInputLinear", "SmoothQuant",
    "algorithm_from_dict", "apply", "ptq",
]
