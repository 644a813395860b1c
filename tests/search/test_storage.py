"""Workers sharing one storage, a killed search resumed, resume refused, bad storage URLs."""

import signal
import time
from pathlib import Path

import pytest

from slimkit.search import SearchConfig, SearchError, search_worker
from slimkit.search.storage import tally
from tests.search.helpers import ScoreEvaluator, stored_study, tiny_space, worker_process


def _wait_for_lines(log: Path, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"the worker process did not evaluate {n} candidates in {timeout} s")


def test_two_workers_finish_n_trials_and_evaluate_each_once(tmp_path):
    """A worker process and this process share a journal storage."""
    cfg = SearchConfig(strategy="evolution", n_trials=10, run_dir=tmp_path, storage="journal")
    log = tmp_path / "evals.log"
    p = worker_process(cfg, log, sleep_s=0.1)
    _wait_for_lines(log, 1)  # it has started: run alongside it
    search_worker(cfg, tiny_space(), ScoreEvaluator(0.1, str(log)))
    assert p.wait(timeout=60) == 0, p.stderr.read().decode()[-2000:]
    done = [t for t in stored_study(cfg).get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 10
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 10  # one evaluation per completed trial, none repeated or wasted
    assert len({ln.split()[0] for ln in lines}) == 2  # both processes took part
    assert len({t.number for t in done}) == 10
    assert len({t.user_attrs["lease"][0] for t in done}) == 2


def test_killed_search_restarts_to_the_same_number_of_completed_trials(tmp_path):
    cfg = SearchConfig(strategy="reinforce", n_trials=6, run_dir=tmp_path, storage="journal")
    log = tmp_path / "evals.log"
    p = worker_process(cfg, log, sleep_s=0.2)
    _wait_for_lines(log, 2)  # kill it while it evaluates its second or third candidate
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = tally(stored_study(cfg))
    assert 0 < before.complete < 6 and before.running == 1  # its trial is left RUNNING
    search_worker(cfg, tiny_space(), ScoreEvaluator())  # restart (here, in this process)
    after = tally(stored_study(cfg))
    assert after.complete == 6 and after.running == 0
    assert after.lost == 1  # only the trial that was running is lost


def test_resume_with_a_different_space_or_strategy_is_refused(tmp_path):
    cfg = SearchConfig(strategy="random", n_trials=2, run_dir=tmp_path)  # the default: SQLite
    search_worker(cfg, tiny_space(), ScoreEvaluator())
    with pytest.raises(SearchError, match=r"different space: gene 'width': options \[4, 8, 16, "
                                          r"32\].*\[4, 8, 16, 64\]"):
        search_worker(cfg, tiny_space(widths=(4, 8, 16, 64)), ScoreEvaluator())
    other = SearchConfig(strategy="evolution", n_trials=2, run_dir=tmp_path)
    with pytest.raises(SearchError, match="different config: strategy: 'random' in storage, "
                                          "'evolution' now"):
        search_worker(other, tiny_space(), ScoreEvaluator())
    more = SearchConfig(strategy="random", n_trials=3, run_dir=tmp_path)
    search_worker(more, tiny_space(), ScoreEvaluator())  # more trials of the same search: fine
    assert tally(stored_study(more)).complete == 3


@pytest.mark.parametrize("url, match", [
    ("sqlite:////nonexistent-dir/x/search.db", "cannot open search storage 'sqlite:////nonex"),
    ("bogus://host/db", "cannot open search storage 'bogus://host/db'"),
    ("journal:/nonexistent-dir/x.journal", "directory /nonexistent-dir does not exist"),
])
def test_a_storage_that_cannot_be_opened_gets_a_clear_error(url, match):
    with pytest.raises(SearchError, match=match):
        search_worker(SearchConfig(storage=url, n_trials=1), tiny_space(), ScoreEvaluator())


def test_search_command_with_an_unreachable_storage_stops_before_any_work(tmp_path):
    """Named with its URL, exit code 2, and no run directory: the planner opens the storage
    before the source model is trained or anything is written."""
    from click.testing import CliRunner

    from slimkit.cli import main

    recipe = tmp_path / "s.yaml"
    recipe.write_text("""
model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.25}, train: {epochs: 1}}
data: {digits: {}}
stages:
  - search: {space: digits, strategy: random, n_trials: 2}
""")
    url = "postgresql://slimkit@127.0.0.1:1/nowhere"  # port 1: nothing listens
    res = CliRunner().invoke(main, ["search", str(recipe), "--out", str(tmp_path / "run"),
                                    "--storage", url, "--quiet"])
    assert res.exit_code == 2, res.output
    assert f"stages[0].search: cannot open search storage '{url}'" in res.output
    assert not (tmp_path / "run").exists()
