"""A model's version is the hash of its weights: it changes exactly when the weights do."""

from __future__ import annotations

import hashlib
from pathlib import Path

_WEIGHT_SUFFIXES = (".safetensors",)


def weights_version(model_id: str) -> str:
    """``sha256:<12 hex>`` over the safetensors files of a local checkpoint directory.

    A hub id is versioned by the hub (its revision), so it is reported as given.
    """
    directory = Path(model_id)
    if not directory.is_dir():
        return f"hub:{model_id}"
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no safetensors weights in {directory}")
    for path in files:
        digest.update(path.relative_to(directory).as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()[:12]}"
