"""Knowledge distillation: logit KD (kd_loss) and feature distillation (Distiller)."""

from slimkit.distill.config import DistillConfig
from slimkit.distill.distiller import Distiller
from slimkit.distill.losses import kd_loss

__all__ = ["DistillConfig", "Distiller", "kd_loss"]
