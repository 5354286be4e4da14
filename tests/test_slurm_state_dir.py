"""scripts/slurm_cluster.sh keeps its state in a private folder and trusts nothing found there.

The daemons run as root and load their key, configs and database password from the state folder,
so the script must refuse a folder someone else could have prepared (a symlink, a foreign owner,
group/other write, a world-writable parent without the sticky bit), must not follow a planted lock
link, and must generate its secrets afresh on every start. None of these needs SLURM installed:
`stop` takes the same lock (and so the same checks) as `start`, and the secret handling is
exercised by sourcing the script's functions.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from slurm_helpers import CLUSTER_SCRIPT

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to another user)")


def _run(cmd: str, state_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_STATE_DIR": str(state_root), "SLURM_CLUSTER_NAME": "statetest"}
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), cmd, *args], env=env, text=True,
                          capture_output=True, timeout=60)


def test_fresh_root_is_created_private(tmp_path):
    root = tmp_path / "state"
    proc = _run("stop", root)
    assert proc.returncode == 0, proc.stderr
    assert root.is_dir() and not root.is_symlink()
    mode = root.stat().st_mode & 0o777
    assert mode & 0o022 == 0, oct(mode)
    lock = root / ".statetest.lock"
    assert lock.is_file() and not lock.is_symlink()


def test_symlinked_root_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "state"
    link.symlink_to(target)
    proc = _run("stop", link)
    assert proc.returncode != 0
    assert "is a symlink" in proc.stderr and str(link) in proc.stderr
    assert not any(target.iterdir()), "nothing may be written through the link"


def test_group_writable_root_is_refused(tmp_path):
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(0o777)
    proc = _run("stop", root)
    assert proc.returncode != 0
    assert "writable by group or others" in proc.stderr
    assert not any(root.iterdir())


@ROOT_ONLY
def test_foreign_owned_root_is_refused(tmp_path):
    root = tmp_path / "state"
    root.mkdir(mode=0o755)
    os.chown(root, 65534, 65534)
    proc = _run("stop", root)
    assert proc.returncode != 0
    assert "owned by uid 65534" in proc.stderr
    assert not any(root.iterdir())


def test_world_writable_parent_without_sticky_bit_is_refused(tmp_path):
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(0o777)                     # anyone could rename our folder away and plant one
    proc = _run("stop", parent / "state")
    assert proc.returncode != 0
    assert "world-writable without the sticky bit" in proc.stderr
    assert not (parent / "state").exists()


def test_sticky_world_writable_parent_is_fine(tmp_path):
    parent = tmp_path / "tmp-like"
    parent.mkdir()
    parent.chmod(0o1777)                    # like /tmp: what we create there stays ours
    proc = _run("stop", parent / "state")
    assert proc.returncode == 0, proc.stderr


def test_planted_lock_symlink_is_not_followed(tmp_path):
    root = tmp_path / "state"
    root.mkdir(mode=0o711)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (root / ".statetest.lock").symlink_to(victim)
    proc = _run("stop", root)
    assert proc.returncode != 0
    assert "lock is a symlink" in proc.stderr
    assert victim.read_text() == "precious\n"


def _source(body: str, etc: Path) -> subprocess.CompletedProcess:
    script = f"""
set -euo pipefail
source {CLUSTER_SCRIPT}
ETC={etc} CONF={etc}/slurm.conf
{body}
"""
    return subprocess.run(["bash", "-c", script], text=True, capture_output=True, timeout=60)


def test_planted_secrets_are_replaced(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o700)
    (etc / "munge.key").write_bytes(b"planted-key" * 100)
    (etc / "db.pw").write_text("x'); DROP DATABASE mysql; --\n")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (etc / "slurmdbd.conf").symlink_to(victim)   # rewritten, never written through
    proc = _source('rm -f "$CONF" "$ETC/slurmdbd.conf"; write_configs; echo "PW=$DB_PASSWORD"', etc)
    assert proc.returncode == 0, proc.stderr
    pw = proc.stdout.split("PW=")[1].strip()
    assert len(pw) == 24 and pw.isalnum()
    assert (etc / "db.pw").read_text().strip() == pw
    assert b"planted" not in (etc / "munge.key").read_bytes()
    assert len((etc / "munge.key").read_bytes()) == 1024
    assert (etc / "munge.key").stat().st_mode & 0o077 == 0
    conf = etc / "slurmdbd.conf"
    assert not conf.is_symlink() and f"StoragePass={pw}" in conf.read_text()
    assert conf.stat().st_mode & 0o077 == 0
    assert victim.read_text() == "precious\n"
    # a second start draws another password and key
    first_key = (etc / "munge.key").read_bytes()
    proc2 = _source('write_configs; echo "PW=$DB_PASSWORD"', etc)
    assert proc2.returncode == 0, proc2.stderr
    assert proc2.stdout.split("PW=")[1].strip() != pw
    assert (etc / "munge.key").read_bytes() != first_key


@pytest.mark.parametrize("value, literal", [
    ("abc", "'abc'"),
    ("a'b", "'a''b'"),
    ("x'); DROP DATABASE mysql; --", "'x''); DROP DATABASE mysql; --'"),
    ("back\\slash", "'back\\\\slash'"),
])
def test_sql_quote_keeps_one_literal(tmp_path, value, literal):
    proc = _source(f"sql_quote {shlex.quote(value)}", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == literal
