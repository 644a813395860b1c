"""Files: atomic writes (every file slimkit writes goes through `atomic.py`) and the artifact
(`sk.save` / `sk.load`, in `artifact.py`, which sits above the techniques it rebuilds and so is
imported lazily: techniques import `slimkit.io.atomic` without pulling it in)."""

from slimkit.io.atomic import atomic_dir, atomic_path, write_atomic


def __getattr__(name: str):
    if name in ("save", "load", "ArtifactError", "read_manifest"):
        from slimkit.io import artifact

        return getattr(artifact, name)
    raise AttributeError(f"module 'slimkit.io' has no attribute {name!r}")


__all__ = ["ArtifactError", "atomic_dir", "atomic_path", "load", "read_manifest", "save",
           "write_atomic"]
