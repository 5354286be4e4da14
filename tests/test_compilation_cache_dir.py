"""The persistent XLA cache holds code a later run executes: only a private folder is used."""

import logging
import os

import jax
import pytest

from autonuma_jax.cli.job import enable_compilation_cache
from autonuma_jax.cli.private_dir import private_dir_problem


@pytest.fixture(autouse=True)
def _restore_cache_setting():
    before = jax.config.jax_compilation_cache_dir
    yield
    jax.config.update("jax_compilation_cache_dir", before)


def test_missing_folder_is_created_private(tmp_path):
    d = tmp_path / "a" / "xla"
    assert private_dir_problem(str(d)) is None
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    assert (d.parent.stat().st_mode & 0o077) == 0  # missing parents are private too


def test_symlink_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert "symlink" in private_dir_problem(str(link))


def test_group_or_other_writable_is_refused(tmp_path):
    for mode in (0o770, 0o707, 0o777):
        d = tmp_path / f"m{mode:o}"
        d.mkdir()
        os.chmod(d, mode)
        assert "writable by group or others" in private_dir_problem(str(d))


def test_a_file_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    assert "not a directory" in private_dir_problem(str(f))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_foreign_owner_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    assert "owned by uid 65534" in private_dir_problem(str(d))


def test_unsafe_cache_warns_and_runs_uncached(tmp_path, caplog):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "was-set"))
    with caplog.at_level(logging.WARNING):
        enable_compilation_cache(str(d))
    assert jax.config.jax_compilation_cache_dir is None
    msgs = [r.getMessage() for r in caplog.records if "compilation cache not used" in r.getMessage()]
    assert len(msgs) == 1 and "\n" not in msgs[0] and str(d) in msgs[0]


def test_private_cache_is_enabled(tmp_path):
    d = tmp_path / "xla"
    enable_compilation_cache(str(d))
    assert jax.config.jax_compilation_cache_dir == str(d)
    assert (d.stat().st_mode & 0o777) == 0o700


def test_env_cache_dir_is_checked_too(tmp_path):
    """JAX_COMPILATION_CACHE_DIR (read by jax itself) is held to the same rule when the setting is null."""
    d = tmp_path / "envshared"
    d.mkdir()
    os.chmod(d, 0o775)
    jax.config.update("jax_compilation_cache_dir", str(d))
    enable_compilation_cache(None)
    assert jax.config.jax_compilation_cache_dir is None
