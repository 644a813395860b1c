"""Deployment: ONNX (QDQ) export, runtimes, parity checks. (Not named `export`: the
package would shadow the `sk.export` verb once imported.)"""

from slimkit.deploy.lowering import ExportError
from slimkit.deploy.onnx_export import export, to_onnx
from slimkit.deploy.parity import Parity, check_parity
from slimkit.deploy.runtimes import session

__all__ = ["ExportError", "Parity", "check_parity", "export", "session", "to_onnx"]
