"""Knowledge distillation: logit KD (kd_loss) and feature distillation (Distiller)."""

from slimkit.distill.distiller import Distiller
from slimkit.distill.losses import kd_loss

__all__ = ["Distiller", "kd_loss"]
