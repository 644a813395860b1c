from slimkit.train import checkpoint, service
from slimkit.train.config import TrainConfig
from slimkit.train.guard import TrainingError
from slimkit.train.predict import evaluate, predict
from slimkit.train.trainer import Callback, TaskLoss, Trainer, cross_entropy

__all__ = ["Callback", "TaskLoss", "TrainConfig", "Trainer", "TrainingError", "checkpoint",
           "cross_entropy", "evaluate", "predict", "service"]
