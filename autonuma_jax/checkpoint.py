"""Checkpoints of a running bucket: plain array files (``.npz``, no pickle), written atomically.

A checkpoint holds every state array (RNG position included: the keys live in the params and the
tick in the state), the time-series rows computed so far, and a JSON header with the format
version, the static shapes, a fingerprint of the configurations and a SHA-256 checksum of the
arrays' contents. Loading checks all of them, so a truncated, foreign, mismatched or edited file
gives a one-line error (``CheckpointError``) instead of wrong numbers. The checksum catches
corruption and hand edits; it is not a signature: a state forged together with a recomputed
checksum loads (a checkpoint is trusted as the job folder holding it is, see README).

Files are written to a temporary name and renamed into place, with the permissions a plain
``open()`` would give them (the umask's), not ``mkstemp``'s 0600.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import zipfile

import jax
import numpy as np

FORMAT = "autonuma-jax-checkpoint-2"


class CheckpointError(RuntimeError):
    pass


def fingerprint(configs) -> str:
    h = hashlib.sha256()
    for c in configs:
        h.update(repr(c).encode())
    return h.hexdigest()


def _paths(tree) -> dict:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}


def default_mode() -> int:
    """The mode a new file gets from ``open()``: 0666 minus the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        os.chmod(tmp, default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(bucket, path: str, extra: dict | None = None) -> None:
    arrays = {f"state{k}": v for k, v in _paths(bucket.state).items()}
    if bucket.rows:
        rows = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=1), *bucket.rows)
        arrays.update({f"rows{k}": v for k, v in _paths(rows).items()})
    header = dict(format=FORMAT, static=dataclasses.asdict(bucket.static), fingerprint=fingerprint(bucket.configs),
                  n_configs=len(bucket.configs), reports_done=bucket.reports_done, extra=extra or {},
                  checksum=checksum(arrays))
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def checksum(arrays: dict) -> str:
    """SHA-256 of every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        if k == "header":
            continue
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_header(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path!r} is unreadable or truncated ({type(e).__name__}: {e})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path!r} has format {header.get('format')!r}, expected {FORMAT!r}")
    return header


def load(bucket, path: str) -> dict:
    """Restore ``bucket`` (built from the same configurations) from ``path``; returns the header extra."""
    header = read_header(path)
    if header["fingerprint"] != fingerprint(bucket.configs) or header["n_configs"] != len(bucket.configs):
        raise CheckpointError(f"checkpoint {path!r} belongs to other configurations "
                              f"({header['n_configs']} configs, fingerprint {header['fingerprint'][:12]})")
    if header["static"] != json.loads(json.dumps(dataclasses.asdict(bucket.static))):
        raise CheckpointError(f"checkpoint {path!r} has other shapes: {header['static']}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint {path!r} is truncated ({type(e).__name__}: {e})") from None
    if header.get("checksum") != checksum(data):
        raise CheckpointError(f"checkpoint {path!r} fails its content checksum (edited or corrupt)")
    if bucket.state is None:
        bucket.init()
    flat, treedef = jax.tree_util.tree_flatten_with_path(bucket.state)
    leaves = []
    for k, v in flat:
        name = "state" + jax.tree_util.keystr(k)
        if name not in data or data[name].shape != np.shape(v) or data[name].dtype != np.asarray(v).dtype:
            raise CheckpointError(f"checkpoint {path!r} lacks or mismatches array {name}")
        leaves.append(data[name])
    bucket.state = bucket.place(jax.tree_util.tree_unflatten(treedef, leaves))
    from .simulate import Row
    if header["reports_done"]:
        rflat, rdef = jax.tree_util.tree_flatten_with_path(
            Row(**{f: np.zeros(0) for f in Row.__dataclass_fields__}))
        rows = [data["rows" + jax.tree_util.keystr(k)] for k, _ in rflat]
        bucket.rows = [jax.tree_util.tree_unflatten(rdef, rows)]
    else:
        bucket.rows = []
    bucket.reports_done = header["reports_done"]
    return header["extra"]
