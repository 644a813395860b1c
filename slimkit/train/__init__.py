from slimkit.train import checkpoint
from slimkit.train.config import TrainConfig
from slimkit.train.predict import evaluate, predict
from slimkit.train.trainer import Callback, Trainer, cross_entropy

__all__ = ["Callback", "TrainConfig", "Trainer", "checkpoint", "cross_entropy", "evaluate",
           "predict"]
