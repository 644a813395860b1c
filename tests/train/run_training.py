"""Child process for the resume and DDP tests (run as a script, or under torchrun).

usage: run_training.py CKPT_DIR OUT.pt [--kill-at STEP [--kill-rank R]] [--resume] [--batch N]
                       [--epochs N] [--qat] [--kd] [--prune] [--fsdp] [--recompute]
                       [--every-seconds S]
Trains a small DigitsCNN on real digits; --kill-at sends SIGKILL to itself right after the
optimizer step STEP (a checkpoint is written every 10 steps), like a preempted job. Under
torchrun's --max-restarts only the first attempt dies (TORCHELASTIC_RESTART_COUNT 0), only
on rank R when given. --prune fine-tunes a copy pruned to 60% of its MACs; --fsdp shards it
(FSDP2) and saves the consolidated model.
"""

import argparse
import os
import signal
from pathlib import Path

import torch

from slimkit.data.digits import digits_tensors
from slimkit.models import DigitsCNN
from slimkit.train import Callback, TrainConfig, Trainer, checkpoint


class KillAt(Callback):
    def __init__(self, step: int, rank: int | None) -> None:
        self.at, self.rank = step, rank

    def on_step_end(self, trainer) -> None:
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        mine = self.rank is None or trainer.rank == self.rank
        if trainer.step == self.at and first_attempt and mine:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--kill-at", type=int, default=0)
    ap.add_argument("--kill-rank", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--prune", action="store_true", help="fine-tune a pruned copy")
    ap.add_argument("--fsdp", action="store_true", help="TrainConfig.parallel='fsdp'")
    ap.add_argument("--recompute", action="store_true", help="TrainConfig.recompute")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--qat", action="store_true", help="train w8a8 QAT; every rank saves buffers")
    ap.add_argument("--kd", action="store_true",
                    help="distil logits + features (a learned adapter); every rank saves it")
    ap.add_argument("--every-seconds", type=float, default=0.0,
                    help="checkpoint by the clock instead of every 10 steps (rank 0 decides)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    train, test = digits_tensors()
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch, lr=3e-3, checkpoint_dir=Path(a.ckpt),
                      checkpoint_every=0 if a.every_seconds else 10,
                      checkpoint_seconds=a.every_seconds, progress=False,
                      parallel="fsdp" if a.fsdp else "ddp", recompute=a.recompute)
    callbacks = [KillAt(a.kill_at, a.kill_rank)] if a.kill_at else []
    model = DigitsCNN(width=0.5)
    if a.prune:
        import slimkit as sk

        example = torch.stack([train[i][0] for i in range(8)])
        model = sk.prune(model, sk.PruneConfig(target_macs=0.4), example)
    if a.qat:
        import slimkit as sk

        example = torch.stack([train[i][0] for i in range(32)])
        model = sk.prepare_qat(model, sk.QuantConfig.w8a8(), example)
    kd = {}
    if a.kd:
        from slimkit.distill import Distiller

        teacher = DigitsCNN(width=1.0).eval()  # same seed → the same teacher on every rank
        distiller = Distiller(teacher, features=[("features.3", "features.3")])
        example = torch.stack([train[i][0] for i in range(8)])
        kd = {"loss_fn": distiller, "extra_parameters": distiller.trainable(model, example)}
    found = checkpoint.latest(a.ckpt) if a.resume else None  # a restarted attempt finds one
    resumed_at = int(found.name[5:13]) if found else None
    with Trainer(model, cfg, train, test, callbacks=callbacks, **kd) as t:
        t.fit(resume=a.resume)
        if a.qat or a.kd:
            saved = dict(t.model.named_buffers())
            if a.kd:
                saved |= {f"adapter.{k}": v for k, v in distiller.adapters.state_dict().items()}
            torch.save(saved, f"{a.out}.rank{t.rank}")
        accuracy = t.evaluate()  # every rank: a sharded model's forward gathers its weights
        whole = t.consolidated()  # every rank joins; the whole model on rank 0
        if t.rank == 0:
            torch.save({"model": whole.state_dict(), "accuracy": accuracy,
                        "step": t.step, "resumed_at": resumed_at,
                        # per launcher: a node whose worker did not fail restarts with 0
                        "restarts": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))},
                       a.out)


if __name__ == "__main__":
    main()
