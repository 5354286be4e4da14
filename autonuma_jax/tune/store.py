"""The tuning job's records, kept in one JSON file that is rewritten atomically after each batch.

It is both the job's checkpoint between rounds (a rerun skips every batch already recorded) and
its raw output (``cli/tune_outputs.py`` turns it into results.parquet, tables and plots). A store
belongs to one job: its ``fingerprint`` (``TuneSpec.fingerprint``) is recorded on first use and a
different job is refused, so a changed search never mixes with an old one's numbers.
"""
from __future__ import annotations

import json
import os
import tempfile

from ..errors import ConfigError

VERSION = 1


class Store:
    """Records in memory, mirrored to ``path`` (None: memory only)."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.fingerprint: str | None = None
        self.meta: dict = {}
        self.batches: dict[str, int] = {}  # batch key -> number of records
        self.records: list[dict] = []
        if path and os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
            if data.get("version") != VERSION:
                raise ConfigError(f"{path}: a tuning store of version {data.get('version')!r}, this is version "
                                  f"{VERSION}; use another output folder")
            self.fingerprint = data["fingerprint"]
            self.meta = dict(data.get("meta") or {})
            self.batches = dict(data["batches"])
            self.records = list(data["records"])

    def claim(self, fingerprint: str, meta: dict | None = None) -> None:
        if self.fingerprint is not None and self.fingerprint != fingerprint:
            raise ConfigError(f"{self.path}: holds another tuning job (fingerprint {self.fingerprint}, this one "
                              f"{fingerprint}); use another output folder or remove it")
        if self.fingerprint is None:
            self.fingerprint = fingerprint
            self.meta = dict(meta or {})
            self._write()

    @staticmethod
    def key(stage: str, cell: str, rung: int) -> str:
        return f"{stage}|{cell}|{rung}"

    def has(self, stage: str, cell: str, rung: int) -> bool:
        return self.key(stage, cell, rung) in self.batches

    def add(self, stage: str, cell: str, rung: int, records: list[dict]) -> None:
        self.records.extend(records)
        self.batches[self.key(stage, cell, rung)] = len(records)
        self._write()

    def select(self, **match) -> list[dict]:
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def _write(self) -> None:
        if not self.path:
            return
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".store-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": VERSION, "fingerprint": self.fingerprint, "meta": self.meta, "batches": self.batches,
                           "records": self.records}, f)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.remove(tmp)
            except OSError:
                pass
            raise
