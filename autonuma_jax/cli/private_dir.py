"""A folder only its owner can write: the persistent XLA compilation cache.

The cache holds compiled executables that a later run loads and runs without recompiling, so
whoever can write the folder can make the next run execute their code. It must therefore be
private to the user: created mode 0700, owned by the user, not a symlink (which could point it at
someone else's folder), and neither group- nor other-writable. A folder that fails any of these is
not used; the run goes on without a cache after a one-line warning (the cache is an optimisation
only, never a reason to stop a job).
"""

from __future__ import annotations

import os
import stat


def private_dir_problem(path: str) -> str | None:
    """Make `path` (and missing parents, 0700) if absent; return why it is unsafe, or None if fine."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.islink(path):
        return f"{path} is a symlink"
    if not os.path.exists(path):
        old = os.umask(0o077)
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as e:
            return f"cannot create {path}: {e.strerror or e}"
        finally:
            os.umask(old)
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"cannot stat {path}: {e.strerror or e}"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    uid = os.geteuid() if hasattr(os, "geteuid") else st.st_uid
    if st.st_uid != uid:
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}; use chmod go-w)"
    return None
