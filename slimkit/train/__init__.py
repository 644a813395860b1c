from slimkit.train import checkpoint
from slimkit.train.config import TrainConfig
from slimkit.train.loop import evaluate, fit, predict
from slimkit.train.trainer import Callback, Trainer, cross_entropy

__all__ = ["Callback", "TrainConfig", "Trainer", "checkpoint", "cross_entropy", "evaluate", "fit",
           "predict"]
