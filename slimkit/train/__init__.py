from slimkit.train.loop import evaluate, fit, predict

__all__ = ["evaluate", "fit", "predict"]
