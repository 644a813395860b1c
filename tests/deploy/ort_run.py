"""Run an ONNX file in ONNX Runtime on saved inputs — numpy and onnxruntime only, so it starts
in seconds under a CPU emulator (qemu-x86_64 -cpu Haswell: AVX2, no VNNI).

    python ort_run.py model.onnx inputs.npy outputs.npy
    python ort_run.py --cpuid          # print the features CPUID reports, one per line
"""

import importlib.util
import sys
from pathlib import Path


def cpuid_features() -> list[str]:
    # load slimkit/_cpuid.py alone: importing the package would import torch (slow emulated)
    path = Path(__file__).parents[2] / "slimkit" / "_cpuid.py"
    spec = importlib.util.spec_from_file_location("_cpuid", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return sorted(mod.x86_info()[2])


def main() -> None:
    if sys.argv[1] == "--cpuid":
        print("\n".join(cpuid_features()))
        return
    import numpy as np
    import onnxruntime as ort

    model, inputs, outputs = sys.argv[1:4]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    x = np.load(inputs)
    np.save(outputs, s.run(None, {s.get_inputs()[0].name: x})[0])


if __name__ == "__main__":
    main()
