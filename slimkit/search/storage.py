"""Where a search lives: an Optuna storage (SQLite in the run directory by default, an RDB URL
for several machines, a journal file for several processes on one machine), the study in it,
and the bookkeeping that lets workers share it and a killed search resume.

- Identity: the space and the parts of the config that give trials their meaning are stored
  as study attributes; resuming with a different space, strategy, objective or constraint is
  refused with the difference named.
- Owner: a study made by a recipe run carries that recipe's identity; another recipe (on this
  host or another sharing the URL) is refused, or with replace=True deletes it and starts anew.
  A study of the same owner is always joined, never replaced, so hosts cannot erase each other.
- Leases: the worker running a trial writes its host:pid and a heartbeat into the trial (user
  attr 'lease'); a RUNNING trial whose worker is gone (same host, pid dead) or silent for 3
  heartbeats is marked FAIL ('lost'), so a restarted search loses only the trials that ran.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import optuna
from optuna.trial import Trial, TrialState

from slimkit.atomic import pid_alive
from slimkit.search.config import SearchConfig
from slimkit.search.space import SearchError, Space

WORKER = f"{socket.gethostname()}:{os.getpid()}"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(config: SearchConfig):
    """The configured storage, or None (in memory) when there is neither storage nor run_dir."""
    spec, run_dir = config.storage, config.run_dir
    if spec is None and run_dir is None:
        return None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    if spec is None:
        spec = f"sqlite:///{run_dir / 'search.db'}"
    try:
        if spec == "journal" or spec.startswith("journal:"):
            return _journal(spec, run_dir)
        return _rdb(spec)
    except SearchError:
        raise
    except Exception as e:  # noqa: BLE001 — sqlalchemy / driver errors: keep the cause, name the URL
        first = str(e).splitlines()[0] if str(e) else ""
        raise SearchError(f"cannot open search storage {spec!r}: {type(e).__name__}: {first} "
                          "(use an sqlite:///PATH, postgresql://…, mysql://… URL whose driver "
                          "is installed, or 'journal' / 'journal:PATH')") from e


def _rdb(spec: str):
    spec = _with_driver(spec)
    if spec.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    elif spec.startswith("postgresql"):  # an unreachable host fails in seconds, not minutes
        kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    else:
        kwargs = {}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(spec, engine_kwargs=kwargs)
        except Exception as e:  # noqa: BLE001
            # workers of several hosts creating the schema at once: one wins, the others'
            # CREATE TABLE collides; a second look finds the tables. A refused connection
            # or a missing driver fails the same way every time: no point waiting.
            if attempt == 2 or not _racing(e):
                raise
            time.sleep(0.5 + attempt)


def _with_driver(spec: str) -> str:
    """postgresql://… with the PostgreSQL driver that is installed: SQLAlchemy's default
    changed from psycopg2 (2.0) to psycopg 3 (2.1); slimkit[postgres] installs psycopg 3."""
    if not spec.startswith("postgresql://"):
        return spec
    for module, dialect in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return spec.replace("postgresql://", f"postgresql+{dialect}://", 1)
    raise SearchError(f"cannot open search storage {spec!r}: no PostgreSQL driver is "
                      "installed (pip install 'slimkit[postgres]': psycopg)")


def _racing(e: Exception) -> bool:
    text = f"{type(e).__name__} {e}".lower()
    return any(k in text for k in ("already exists", "duplicate", "unique", "integrity"))


def _journal(spec: str, run_dir):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if spec == "journal":
        if run_dir is None:
            raise SearchError("storage='journal' needs run_dir (or give 'journal:PATH')")
        path = run_dir / "search.journal"
    else:
        path = spec.partition(":")[2]
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise SearchError(f"cannot open search storage {spec!r}: directory {parent} does not "
                          "exist")
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(config: SearchConfig, space: Space, sampler, owner: str | None = None,
               replace: bool = False) -> optuna.Study:
    """Create the study, or load it and check it is the same search (and owner's).
    replace: delete a study another owner left under this name first."""
    storage = open_storage(config)
    if replace and owner is not None:
        _replace_foreign(storage, config.study_name, owner)
    study = optuna.create_study(storage=storage, study_name=config.study_name, sampler=sampler,
                                directions=config.directions, load_if_exists=True)
    for _ in range(20):  # a worker that created it a moment ago is writing its identity
        if "slimkit.space" in study.user_attrs or not study.get_trials(deepcopy=False):
            break
        time.sleep(0.1)
    if "slimkit.space" not in study.user_attrs and not study.get_trials(deepcopy=False):
        study.set_user_attr("slimkit.space", space.to_dict())  # racing workers write the same
        study.set_user_attr("slimkit.config", json.loads(json.dumps(config.identity())))
        if owner is not None:
            study.set_user_attr("slimkit.owner", owner)
    _check_same(study, config, space, owner)
    return study


def _replace_foreign(storage, name: str, owner: str) -> None:
    try:
        old = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return  # no such study yet
    if old.user_attrs.get("slimkit.owner") != owner:
        optuna.delete_study(study_name=name, storage=storage)


def _check_same(study: optuna.Study, config: SearchConfig, space: Space,
                owner: str | None = None) -> None:
    where = f"study '{study.study_name}'"
    theirs = study.user_attrs.get("slimkit.owner")
    if owner is not None and theirs not in (None, owner):
        raise SearchError(f"cannot join {where}: another recipe created it (recipe identity "
                          f"{theirs}, this one {owner}); give another study_name or storage, "
                          "or pass --force to delete that study and start this one")
    stored = study.user_attrs.get("slimkit.space")
    if stored is None:
        raise SearchError(f"cannot resume {where}: it was not created by slimkit.search")
    diff = space.difference(stored)
    if diff:
        raise SearchError(f"cannot resume {where} with a different space: {diff}")
    old, new = study.user_attrs.get("slimkit.config", {}), config.identity()
    new = json.loads(json.dumps(new))  # tuples → lists, as stored
    changed = [f"{k}: {old.get(k)!r} in storage, {v!r} now" for k, v in new.items()
               if old.get(k) != v]
    if changed:
        raise SearchError(f"cannot resume {where} with a different config: " + "; ".join(changed))


# ---- leases -----------------------------------------------------------------------------------
class Lease:
    """Marks the trial this worker runs and keeps its heartbeat fresh from a daemon thread."""

    def __init__(self, heartbeat_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self._stop: threading.Event | None = None

    def hold(self, trial: Trial) -> None:
        trial.set_user_attr("lease", [WORKER, time.time()])  # one write: (host:pid, heartbeat)
        self._stop = stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                try:
                    trial.set_user_attr("lease", [WORKER, time.time()])
                except Exception:  # noqa: BLE001 — finished meanwhile: nothing left to keep
                    return

        threading.Thread(target=beat, daemon=True, name="slimkit-heartbeat").start()

    def release(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None


def fail_lost_trials(study: optuna.Study, heartbeat_s: float) -> list[int]:
    """Mark RUNNING trials whose worker died (same host) or went silent as FAIL; their numbers."""
    now, lost = time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker, beat = t.user_attrs.get("lease", (None, None))
        if beat is None:
            beat = t.datetime_start.timestamp() if t.datetime_start else now
        dead = False
        if worker and worker != WORKER:
            host, _, pid = worker.rpartition(":")
            dead = host == socket.gethostname() and not pid_alive(int(pid))
        if dead or now - beat > 3 * heartbeat_s:
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            lost.append(t.number)
    return lost


@dataclass
class Tally:
    complete: int = 0
    running: int = 0
    failed: int = 0  # builder / evaluator errors
    rejected: int = 0
    lost: int = 0  # worker died while it ran


def tally(study: optuna.Study) -> Tally:
    out = Tally()
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out.complete += 1
        elif t.state == TrialState.RUNNING:
            out.running += 1
        elif "rejected" in t.user_attrs:
            out.rejected += 1
        elif "error" in t.user_attrs:
            out.failed += 1
        elif t.state == TrialState.FAIL and "surplus" not in t.user_attrs:
            out.lost += 1
    return out


def in_budget(study: optuna.Study, number: int, n_trials: int) -> bool:
    """Whether trial `number` may run: completed trials plus running ones asked before it
    stay under n_trials. Workers that asked at the same moment agree on who goes first."""
    used = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and t.number < number
                                              and "rejected" not in t.user_attrs):
            used += 1
    return used < n_trials
