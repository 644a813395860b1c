"""Every way an artifact can be bad is refused with an error naming what is wrong — and
nothing is half-loaded, nothing half-written."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import slimkit as sk
from slimkit.artifact import MANIFEST, WEIGHTS, ArtifactError, _sha256
from slimkit.atomic import WriteError, write_atomic
from tests.artifact import nets


@pytest.fixture
def art(tmp_path):
    m = nets.digits()
    q = sk.quantize(m, sk.QuantConfig.w8a8(), calib=[torch.randn(8, 1, 8, 8)], progress=False)
    return sk.save(q, tmp_path / "q", factory="tests.artifact.nets:digits"), q


def _rewrite(path, change):
    """Change the weights, then make the checksum agree (a consistent but wrong artifact)."""
    w = load_file(str(path / WEIGHTS))
    change(w)
    save_file(w, str(path / WEIGHTS))
    m = json.loads((path / MANIFEST).read_text())
    m["weights"]["sha256"] = _sha256(path / WEIGHTS)
    (path / MANIFEST).write_text(json.dumps(m))


def _manifest(path, change):
    m = json.loads((path / MANIFEST).read_text())
    change(m)
    (path / MANIFEST).write_text(json.dumps(m))


def test_truncated_and_flipped_weights_fail_the_checksum(art):
    path, _ = art
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        sk.load(path)
    flipped = bytearray(data)
    flipped[len(data) - 10] ^= 0x40
    (path / WEIGHTS).write_bytes(bytes(flipped))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        sk.load(path)
    (path / WEIGHTS).unlink()
    with pytest.raises(ArtifactError, match="weights file weights.safetensors is missing"):
        sk.load(path)


def test_missing_extra_and_misshapen_weights_are_named(art):
    path, _ = art
    _rewrite(path, lambda w: w.pop("features.0.0.packed.packed"))
    with pytest.raises(ArtifactError, match=r"missing \['features.0.0.packed.packed'\]"):
        sk.load(path)
    codes = torch.zeros(288, dtype=torch.uint8)
    _rewrite(path, lambda w: w.update({"features.0.0.packed.packed": codes,
                                       "stray": torch.zeros(3)}))
    with pytest.raises(ArtifactError, match=r"unexpected \['stray'\]"):
        sk.load(path)
    _rewrite(path, lambda w: (w.pop("stray"), w.update(
        {"classifier.2.layer.bias": torch.zeros(11)})))
    with pytest.raises(ArtifactError, match=r"'classifier.2.layer.bias' has shape \(11,\)"):
        sk.load(path)


def test_a_newer_format_a_foreign_manifest_and_a_plain_directory_are_refused(art, tmp_path):
    path, _ = art
    _manifest(path, lambda m: m.update(version=99, slimkit="9.0"))
    with pytest.raises(ArtifactError, match="newer slimkit .*format 99.*upgrade"):
        sk.load(path)
    _manifest(path, lambda m: m.update(format="something-else"))
    with pytest.raises(ArtifactError, match="not a slimkit artifact manifest"):
        sk.load(path)
    (path / MANIFEST).write_text("{ not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        sk.load(path)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ArtifactError, match="is not a slimkit artifact"):
        sk.load(plain)
    with pytest.raises(ArtifactError, match="is not a slimkit artifact"):
        sk.load(tmp_path / "nowhere")


def test_a_missing_factory_is_named(art):
    path, _ = art
    _manifest(path, lambda m: m.update(source={"factory": "not_a_package.models:net",
                                               "kwargs": {}}))
    with pytest.raises(ArtifactError, match="cannot import 'not_a_package.models:net'.*model="):
        sk.load(path)
    _manifest(path, lambda m: m.update(source={"factory": "slimkit.models:DigitsCNN",
                                               "kwargs": {"width": 0.5}}))
    with pytest.raises(ArtifactError, match="has shape .* is the source model"):
        sk.load(path)  # the wrong kwargs rebuild a different structure: refused, not loaded


def test_loading_runs_no_code_from_the_artifact(art):
    path, _ = art
    # a plan naming a type slimkit does not register cannot make it import or run anything
    _manifest(path, lambda m: m["plan"]["specs"][0].update(type="os.system"))
    with pytest.raises(sk.ConfigError, match="unknown quantization type 'os.system'"):
        sk.load(path)


def test_saving_never_overwrites_other_files_and_leaves_nothing_half_written(art, tmp_path):
    _, q = art
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(WriteError, match="not a slimkit artifact: refusing"):
        sk.save(q, keep, factory="tests.artifact.nets:digits")
    assert (keep / "notes.txt").read_text() == "mine"
    with pytest.raises(WriteError, match="does not exist"):
        sk.save(q, tmp_path / "no" / "such" / "dir", factory="tests.artifact.nets:digits")
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: nothing to check here
            pytest.skip("running as a user that can write anywhere")
        with pytest.raises(WriteError):
            sk.save(q, ro / "q", factory="tests.artifact.nets:digits")
    finally:
        os.chmod(ro, 0o700)


def test_a_qat_model_must_be_converted_first(tmp_path):
    qat = sk.prepare_qat(nets.digits(), sk.QuantConfig.w8a8(), torch.randn(4, 1, 8, 8))
    with pytest.raises(ArtifactError, match="sk.convert"):
        sk.save(qat, tmp_path / "qat")
    assert not (tmp_path / "qat").exists()


def test_resaving_replaces_an_earlier_artifact_atomically(art):
    path, q = art
    before = (path / MANIFEST).read_text()
    sk.save(q, path, factory="tests.artifact.nets:digits")
    assert (path / MANIFEST).read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["q"]  # no temp dirs left


def test_a_full_disk_during_save_leaves_nothing_behind(art, tmp_path, monkeypatch):
    import errno

    import safetensors.torch as st

    _, q = art

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(st, "save_file", full)
    with pytest.raises(WriteError, match="No space left"):
        sk.save(q, tmp_path / "new", factory="tests.artifact.nets:digits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q"]  # no partial dir, no temp


def test_an_archive_is_the_directory_zipped_and_refuses_damage(art, tmp_path):
    import zipfile

    path, q = art
    z = sk.save(q, tmp_path / "q.zip", factory="tests.artifact.nets:digits")
    assert z.is_file() and torch.equal(sk.load(z)(torch.ones(2, 1, 8, 8)),
                                       q(torch.ones(2, 1, 8, 8)))
    with zipfile.ZipFile(z) as f:  # unzipped, it is the directory form
        assert sorted(f.namelist()) == sorted(p.name for p in path.iterdir())
        assert f.read(WEIGHTS) == (path / WEIGHTS).read_bytes()
    assert sk.read_manifest(z)["weights"]["sha256"] == _sha256(path / WEIGHTS)
    data = z.read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="not a slimkit artifact"):
        sk.load(tmp_path / "cut.zip")  # the central directory is gone: not an archive at all
    for at in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):  # inside the members
        flipped = bytearray(data)
        flipped[at] ^= 0x40  # a deflate stream, its CRC or the weights' checksum disagrees
        (tmp_path / "flip.zip").write_bytes(bytes(flipped))
        with pytest.raises(ArtifactError, match="unreadable|checksum mismatch"):
            sk.load(tmp_path / "flip.zip")
    other = tmp_path / "notes.zip"
    with zipfile.ZipFile(other, "w") as f:
        f.writestr("notes.txt", "mine")
    with pytest.raises(WriteError, match="not a slimkit artifact: refusing"):
        sk.save(q, other, factory="tests.artifact.nets:digits")
    with pytest.raises(ArtifactError, match="not a slimkit artifact"):
        sk.load(other)
    sk.save(q, z, factory="tests.artifact.nets:digits")  # an earlier archive is replaced
    assert sorted(p.name for p in tmp_path.glob("q.zip*")) == ["q.zip"]


def test_temp_files_of_killed_writers_are_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f".cache.json.{dead}.abc123.tmp"  # SIGKILL mid-write leaves this
    live = tmp_path / f".cache.json.{os.getpid()}.def456.tmp"  # a writer still running
    other = tmp_path / f".other.json.{dead}.ghi789.tmp"  # another file's: not ours to touch
    for p in (orphan, live, other):
        p.write_text("{half")
    write_atomic(tmp_path / "cache.json", "{}")
    assert (tmp_path / "cache.json").read_text() == "{}"
    assert not orphan.exists() and live.exists() and other.exists()


def _load_fresh(path) -> subprocess.CompletedProcess:
    """sk.load in a new process: no technique imported, only what the manifest names."""
    code = ("import slimkit as sk, sys; m = sk.load(sys.argv[1]); "
            "print(' '.join(s.kind for s in sk.record_of(m).steps))")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_the_manifest_names_each_step_module_and_older_manifests_still_load(art):
    path, _ = art
    steps = json.loads((path / MANIFEST).read_text())["steps"]
    assert {s["kind"]: s["module"] for s in steps} == {"quantize": "slimkit.quant.flows"}
    _manifest(path, lambda m: [s.pop("module") for s in m["steps"]])  # written before modules
    res = _load_fresh(path)
    assert res.returncode == 0 and res.stdout.split() == ["quantize"], res.stderr


def test_a_step_module_outside_slimkit_is_never_imported(art):
    path, _ = art
    _manifest(path, lambda m: m["steps"][0].update(kind="mystery", module="os"))
    res = _load_fresh(path)
    assert res.returncode == 1
    assert "step 'mystery' has no rebuild registered and the manifest names no slimkit module" \
        in res.stderr
