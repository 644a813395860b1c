"""The search on a real PostgreSQL server (tests/postgres.py starts one in a temporary
directory): worker processes sharing nothing but the URL, as on separate hosts; a SIGKILLed
worker; a study of another recipe; recipes that differ between hosts; two `slimkit search`
commands joining one study."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from slimkit.search import SearchConfig, SearchError, search_worker
from slimkit.search.storage import open_storage, open_study, tally
from tests.postgres import missing, postgres_server
from tests.search.helpers import ScoreEvaluator, stored_study, tiny_space, worker_process

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None,
                                                   reason=missing() or "")]


@pytest.fixture(scope="module")
def server():
    with postgres_server() as s:
        yield s


@pytest.fixture
def url(server, request):
    return server.database(request.node.name.lower()[:60])


def _evaluations(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_worker_processes_sharing_only_the_url_finish_n_trials_once_each(url, tmp_path):
    cfg = SearchConfig(strategy="evolution", n_trials=12, storage=url)
    log = tmp_path / "evals.log"
    procs = [worker_process(cfg, log, 0.2) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()[-2000:]
    done = [t for t in stored_study(cfg).get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 12 and len({t.number for t in done}) == 12
    assert len(_evaluations(log)) == 12  # no trial evaluated twice, none wasted
    assert len({t.user_attrs["lease"][0] for t in done}) >= 2  # the work was shared


def test_a_killed_worker_loses_only_its_running_trial(url, tmp_path):
    cfg = SearchConfig(strategy="random", n_trials=10, storage=url)
    log = tmp_path / "evals.log"
    victim, other = worker_process(cfg, log, 0.4), worker_process(cfg, log, 0.4)
    deadline = time.time() + 60
    while time.time() < deadline:  # kill it in the middle of an evaluation
        if any(ln.startswith(f"{victim.pid} ") for ln in _evaluations(log)):
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert other.wait(timeout=120) == 0, other.stderr.read().decode()[-2000:]
    t = tally(stored_study(cfg))
    assert t.complete == 10 and t.running == 0
    assert t.lost <= 1  # its running trial, marked FAIL ('lost'), never re-evaluated
    evaluated = _evaluations(log)
    assert len(evaluated) == t.complete + t.lost  # nothing evaluated twice


def test_a_study_of_another_recipe_is_refused_unless_replaced(url):
    cfg = SearchConfig(strategy="random", n_trials=2, storage=url)
    search_worker(cfg, tiny_space(), ScoreEvaluator(), owner="recipe-a")
    with pytest.raises(SearchError, match="another recipe created it .*recipe-a.*--force"):
        search_worker(cfg, tiny_space(), ScoreEvaluator(), owner="recipe-b")
    study = open_study(cfg, tiny_space(), None, owner="recipe-a", replace=True)
    assert len(study.get_trials()) == 2  # the same recipe joins: replace never deletes it
    study = open_study(cfg, tiny_space(), None, owner="recipe-b", replace=True)
    assert study.get_trials() == [] and study.user_attrs["slimkit.owner"] == "recipe-b"


def test_a_second_host_with_a_different_search_is_refused(url):
    first = SearchConfig(strategy="random", n_trials=2, storage=url)
    search_worker(first, tiny_space(), ScoreEvaluator(), owner="r")
    with pytest.raises(SearchError, match="different config: strategy: 'random' in storage, "
                                          "'evolution' now"):
        search_worker(first.replace(strategy="evolution"), tiny_space(), ScoreEvaluator(),
                      owner="r")
    with pytest.raises(SearchError, match="different space: gene 'width'"):
        search_worker(first, tiny_space(widths=(4, 8)), ScoreEvaluator(), owner="r")


RECIPE = """
model: {factory: slimkit.models:DigitsCNN, kwargs: {width: 0.25}, train: {epochs: 1, lr: 0.005}}
data: {digits: {}}
budget: {max_drop: 60}
stages:
  - search: {space: digits, strategy: random, n_trials: 4, proxy: {epochs: 1,
             data_fraction: 0.2}, retrain: {epochs: 1}, top_k: 1}
"""


def test_two_hosts_run_one_study_through_the_cli(url, tmp_path):
    """`slimkit search RECIPE --storage URL` in two processes with their own run directories
    (as on two hosts): n_trials completed between them, both reports read the same study."""
    recipe = tmp_path / "s.yaml"
    recipe.write_text(RECIPE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    hosts = [subprocess.Popen([sys.executable, "-m", "slimkit.cli", "search", str(recipe),
                               "--out", str(tmp_path / f"host{i}"), "--storage", url,
                               "--quiet"], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
             for i in range(2)]
    for h in hosts:
        assert h.wait(timeout=300) == 0, h.stderr.read().decode()[-3000:]
    study = optuna.load_study(study_name="search", storage=open_storage(
        SearchConfig(storage=url)))
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 4
    curves = []
    for i in range(2):
        report = json.loads((tmp_path / f"host{i}" / "report.json").read_text())
        curves.append(report["stages"][0]["info"]["curve"])
        assert not list((tmp_path / f"host{i}").rglob("search.db"))  # the server holds it
    assert curves[0] == curves[1] and len(curves[0]) == 4
