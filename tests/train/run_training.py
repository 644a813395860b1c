"""Child process for the resume and DDP tests (run as a script, or under torchrun).

usage: run_training.py CKPT_DIR OUT.pt [--kill-at STEP] [--resume] [--batch N] [--epochs N]
Trains a small DigitsCNN on real digits; --kill-at sends SIGKILL to itself right after the
optimizer step STEP (a checkpoint is written every 10 steps), like a preempted job.
"""

import argparse
import os
import signal
from pathlib import Path

import torch

from slimkit.data.digits import digits_tensors
from slimkit.models import DigitsCNN
from slimkit.train import Callback, TrainConfig, Trainer


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.at = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("out")
    ap.add_argument("--kill-at", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--qat", action="store_true", help="train w8a8 QAT; every rank saves buffers")
    a = ap.parse_args()
    torch.set_num_threads(1)
    train, test = digits_tensors()
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch, lr=3e-3, checkpoint_dir=Path(a.ckpt),
                      checkpoint_every=10, progress=False)
    callbacks = [KillAt(a.kill_at)] if a.kill_at else []
    model = DigitsCNN(width=0.5)
    if a.qat:
        import slimkit as sk

        example = torch.stack([train[i][0] for i in range(32)])
        model = sk.prepare_qat(model, sk.QuantConfig.w8a8(), example)
    with Trainer(model, cfg, train, test, callbacks=callbacks) as t:
        t.fit(resume=a.resume)
        if a.qat:
            torch.save(dict(t.model.named_buffers()), f"{a.out}.rank{t.rank}")
        if t.rank == 0:
            torch.save({"model": t.model.state_dict(), "accuracy": t.evaluate(),
                        "step": t.step}, a.out)


if __name__ == "__main__":
    main()
