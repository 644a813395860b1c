"""The command line: bench on ONNX files, help, the plan printout (fast; the demo is slow)."""

from click.testing import CliRunner

from slimkit.cli import main


def test_cli_bench_runs_onnx_files(tmp_path):
    import torch

    import slimkit as sk
    from slimkit.models import DigitsCNN

    p = sk.export(DigitsCNN().eval(), torch.randn(2, 1, 8, 8), tmp_path / "d.onnx")
    res = CliRunner().invoke(main, ["bench", str(p), str(p), "--shape", "4,1,8,8",
                                    "--rounds", "2"])
    assert res.exit_code == 0, res.output
    assert res.output.count("d.onnx") == 2 and "speedup" in res.output
    bad = CliRunner().invoke(main, ["bench", str(p), "--shape", "4,x"])
    assert bad.exit_code != 0 and "not a comma-separated list of ints" in bad.output


def test_cli_help_and_plan():
    runner = CliRunner()
    res = runner.invoke(main, ["--help"])
    assert res.exit_code == 0 and "demo" in res.output and "plan" in res.output
    res = runner.invoke(main, ["plan", "--preset", "dynamic"])
    assert res.exit_code == 0
    assert "classifier.2" in res.output and "per-token" in res.output
    assert "applies to Linear|Embedding|LSTM|GRU only" in res.output
