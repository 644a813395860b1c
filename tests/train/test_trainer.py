"""Trainer: exact resume after SIGKILL, checkpoint safety, DDP on gloo, bad input."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from slimkit.errors import ConfigError
from slimkit.models import DigitsCNN
from slimkit.train import Callback, TrainConfig, Trainer, checkpoint
from slimkit.train.checkpoint import CheckpointError

SCRIPT = Path(__file__).with_name("run_training.py")


def _run(*args, launcher=(sys.executable,)) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, str(SCRIPT), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def _why(r: subprocess.CompletedProcess) -> str:
    """The ranks' own errors sit at the start of torchrun's stderr, its summary at the end."""
    return r.stderr if len(r.stderr) < 6000 else f"{r.stderr[:3000]}\n...\n{r.stderr[-3000:]}"


def test_sigkilled_run_resumes_to_the_same_weights(tmp_path):
    full = _run(tmp_path / "a", tmp_path / "a.pt")
    assert full.returncode == 0, full.stderr
    killed = _run(tmp_path / "b", tmp_path / "b.pt", "--kill-at", 25)
    assert killed.returncode == -9  # really killed, mid-epoch (an epoch is 22 steps)
    assert not (tmp_path / "b.pt").exists()
    assert checkpoint.latest(tmp_path / "b").name == "step-00000020.pt"
    resumed = _run(tmp_path / "b", tmp_path / "b.pt", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a["step"] == b["step"] == 44
    for k, v in a["model"].items():
        assert torch.allclose(v.float(), b["model"][k].float(), atol=1e-6, rtol=0), k


@pytest.mark.slow  # two processes, ≈ 14 s: make test-slow (CI runs both)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_ddp_matches_one_process(tmp_path):
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--standalone")  # a free port: runs may share a machine
    ddp = _run(tmp_path / "ddp", tmp_path / "ddp.pt", "--epochs", 4, launcher=torchrun)
    assert ddp.returncode == 0, _why(ddp)
    one = _run(tmp_path / "one", tmp_path / "one.pt", "--epochs", 4)
    assert one.returncode == 0, one.stderr
    d = torch.load(tmp_path / "ddp.pt", weights_only=True)
    o = torch.load(tmp_path / "one.pt", weights_only=True)
    assert d["step"] == o["step"]  # same global batch → same optimizer steps
    assert abs(d["accuracy"] - o["accuracy"]) <= 0.5 + 1e-9
    # the DDP checkpoint loads into a plain 1-process model
    state = checkpoint.read(checkpoint.latest(tmp_path / "ddp"))
    m = DigitsCNN(width=0.5)
    m.load_state_dict(state["model"])
    assert state["world"] == 2


@pytest.mark.slow  # two processes, ≈ 8 s
def test_ddp_qat_observers_and_kd_adapters_are_identical_across_ranks(tmp_path):
    """QAT + logit and feature distillation under 2-process DDP: observer statistics (buffers)
    and the Distiller's adapter (trained outside DDP's model) end equal on both ranks."""
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                "--standalone")  # a free port: runs may share a machine
    r = _run(tmp_path / "q", tmp_path / "q.pt", "--qat", "--kd", "--epochs", 1,
             "--every-seconds", 0.001, launcher=torchrun)
    assert r.returncode == 0, _why(r)  # clock-based checkpoints: both ranks joined each one
    assert len(checkpoint.list_checkpoints(tmp_path / "q")) >= 2
    b0 = torch.load(f"{tmp_path / 'q.pt'}.rank0", weights_only=True)
    b1 = torch.load(f"{tmp_path / 'q.pt'}.rank1", weights_only=True)
    observed = [k for k in b0 if k.endswith(("observer.lo", "observer.hi", ".scale"))]
    assert len(observed) >= 8
    adapters = [k for k in b0 if k.startswith("adapter.")]
    assert adapters == ["adapter.features_3->features_3.weight"]
    assert b0[adapters[0]].shape == (128, 64, 1, 1)  # half-width student → teacher width
    for k in b0:
        assert torch.equal(b0[k], b1[k]), k


def _tiny_trainer(tmp_path, **kw):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,),
                                                                              generator=g))
    cfg = TrainConfig(epochs=1, batch_size=16, checkpoint_dir=tmp_path, progress=False, **kw)
    return Trainer(DigitsCNN(width=0.25), cfg, data, data)


def test_checkpoint_round_trip_restores_optimizer_and_rng(tmp_path):
    t = _tiny_trainer(tmp_path, checkpoint_every=2)
    t.fit()
    saved = checkpoint.read(checkpoint.latest(tmp_path))
    t2 = _tiny_trainer(tmp_path)
    t2._restore()
    assert t2.step == saved["step"] == 4
    assert torch.equal(torch.get_rng_state(), saved["rng"])
    s1, s2 = t.optimizer.state_dict()["state"], t2.optimizer.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_truncated_checkpoint_is_a_clear_error_and_the_previous_one_stays(tmp_path):
    t = _tiny_trainer(tmp_path, checkpoint_every=2)
    t.fit()
    files = checkpoint.list_checkpoints(tmp_path)
    assert [f.name for f in files] == ["step-00000002.pt", "step-00000004.pt"]
    data = files[-1].read_bytes()
    files[-1].write_bytes(data[: len(data) // 2])  # a crash mid-copy, or a full disk
    with pytest.raises(CheckpointError, match=r"step-00000004.pt is unreadable.*step-00000002"):
        checkpoint.read(files[-1])
    assert checkpoint.read(files[0])["step"] == 2


def test_checkpoints_by_the_clock(tmp_path, monkeypatch):
    import slimkit.train.trainer as trainer

    clock = iter(range(0, 1000, 4))  # every call: 4 s later (each step checks the clock once)
    monkeypatch.setattr(trainer, "_clock", lambda: next(clock))
    t = _tiny_trainer(tmp_path, checkpoint_seconds=7)
    t.fit()  # start 0; steps 1–4 see 4, 8 (7 s on: save, at 12), 16 (4 s on), 20 (8: save)
    names = [f.name for f in checkpoint.list_checkpoints(tmp_path)]
    assert names == ["step-00000002.pt", "step-00000004.pt"]
    with pytest.raises(ConfigError, match="checkpoint_seconds needs checkpoint_dir"):
        TrainConfig(checkpoint_seconds=5)
    with pytest.raises(ConfigError, match="checkpoint_seconds=-1: Input should be greater than"):
        TrainConfig(checkpoint_seconds=-1, checkpoint_dir=tmp_path)


def test_bad_training_input(tmp_path):
    empty = TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ConfigError, match="train_data is empty"):
        Trainer(DigitsCNN(), TrainConfig(progress=False), empty)
    with pytest.raises(ConfigError, match="TrainConfig.precision='fp8'"):
        TrainConfig(precision="fp8")
    with pytest.raises(ConfigError, match="checkpoint_every needs checkpoint_dir"):
        TrainConfig(checkpoint_every=5)


def test_bf16_autocast_trains(tmp_path):
    t = _tiny_trainer(tmp_path, precision="bf16")
    hist = t.fit()
    assert len(hist) == 4 and all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)


class _Poison:
    """A loss that overflows on one optimizer step, as an fp16 run sometimes does."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, model, x, y):
        self.calls += 1
        loss = torch.nn.functional.cross_entropy(model(x), y)
        return loss * float("inf") if self.calls == self.at else loss


class _Snapshots(Callback):
    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_step_end(self, trainer) -> None:
        self.weights.append(trainer.model.classifier[2].weight.detach().clone())


def test_fp16_grad_scaler_skips_an_overflowed_step_and_checkpoints_its_scale(tmp_path):
    snaps = _Snapshots()
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 8, 8, generator=g),
                         torch.randint(0, 10, (64,), generator=g))
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp16", checkpoint_dir=tmp_path,
                      progress=False)
    t = Trainer(DigitsCNN(width=0.25), cfg, data, loss_fn=_Poison(at=3), callbacks=[snaps])
    assert t.scaler.is_enabled() and t.scaler.get_scale() == 2.0**16
    t.fit()
    w = snaps.weights
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[2], w[3])  # real updates
    assert torch.equal(w[1], w[2])  # the overflowed step changed nothing
    assert t.scaler.get_scale() == 2.0**15  # and halved the loss scale
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    t2 = Trainer(DigitsCNN(width=0.25), cfg, data)
    t2._restore()
    assert t2.scaler.get_scale() == 2.0**15  # the scale resumes with the run


def test_eval_every_epoch_records_the_metric(tmp_path):
    t = _tiny_trainer(tmp_path, eval_every_epoch=True)
    hist = t.fit()
    evals = [h for h in hist if "eval_top1" in h]
    assert len(evals) == 1 and 0.0 <= evals[0]["eval_top1"] <= 100.0
    assert evals[0]["eval_top1"] == t.evaluate()


def test_checkpoint_dir_may_be_a_plain_string(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,)))
    cfg = TrainConfig(epochs=1, batch_size=16, checkpoint_dir="ckpt", checkpoint_every=1,
                      progress=False)
    Trainer(DigitsCNN(width=0.25), cfg, data).fit()
    assert [p.name for p in checkpoint.list_checkpoints("ckpt")] == ["step-00000001.pt",
                                                                    "step-00000002.pt"]
    with pytest.raises(ConfigError, match="checkpoint_dir=3 must be a path"):
        TrainConfig(checkpoint_dir=3)


class _StopAt(Callback):
    """Interrupt a run right after the checkpoint of step `at` (as a crash would)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.at:
            raise KeyboardInterrupt


def _feature_kd_run(ckpt, stop_at=None, resume=False):
    from slimkit.distill import Distiller

    torch.manual_seed(0)
    teacher = DigitsCNN(width=0.5).eval()
    student = DigitsCNN(width=0.25)
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(96, 1, 8, 8, generator=g), torch.randint(0, 10, (96,),
                                                                              generator=g))
    kd = Distiller(teacher, features=[("features.3", "features.3")])
    adapters = kd.trainable(student, data[:8][0])  # fresh adapters; a resume overwrites them
    cfg = TrainConfig(epochs=2, batch_size=16, checkpoint_dir=ckpt, checkpoint_every=3,
                      progress=False)
    cbs = [] if stop_at is None else [_StopAt(stop_at)]
    t = Trainer(student, cfg, data, loss_fn=kd, callbacks=cbs, extra_parameters=adapters)
    t.fit(resume=resume)
    return student, adapters


def test_feature_kd_resumes_bit_identically_with_its_adapters(tmp_path):
    full, full_ad = _feature_kd_run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _feature_kd_run(tmp_path / "b", stop_at=4)  # checkpoint at 3, killed at 4
    assert checkpoint.latest(tmp_path / "b").name == "step-00000003.pt"
    resumed, res_ad = _feature_kd_run(tmp_path / "b", resume=True)
    for (k, v), w in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert len(full_ad) == len(res_ad) > 0
    for a, b in zip(full_ad, res_ad, strict=True):
        assert torch.equal(a, b)


def test_recompute_trains_the_same_weights_and_leaves_the_model_as_it_was(tmp_path):
    """Activation checkpointing changes what is kept for backward, not the arithmetic: the
    same steps give the same weights; afterwards the modules' forward is their own (the model
    still pickles and saves)."""
    import pickle

    import slimkit as sk

    def trained(recompute: bool):
        torch.manual_seed(0)
        x = torch.randn(8, 1, 8, 8)
        model = sk.prepare_qat(DigitsCNN(width=0.25), sk.QuantConfig.w8a8(), x)
        t = _tiny_trainer(tmp_path / str(recompute))
        t = Trainer(model, t.cfg.replace(recompute=recompute), t.loader.dataset)
        t.fit()
        return model

    plain, again = trained(False), trained(True)
    for (k, a), b in zip(plain.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    assert not any("forward" in vars(m) for m in again.modules())
    pickle.dumps(again)


def test_recompute_on_a_model_without_units_is_an_error(tmp_path):
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 4, generator=g), torch.randint(0, 2, (16,), generator=g))
    cfg = TrainConfig(epochs=1, batch_size=8, progress=False, recompute=True)
    with pytest.raises(ConfigError, match="recompute=True: Linear has no child module"):
        Trainer(torch.nn.Linear(4, 2), cfg, data).fit()
