"""One daemon per SQLite buffer: an exclusive lock on ``<database>.lock`` that names its holder.

The buffer's folder is made 0700 and the lock 0600 (the daemon's umask makes the database and
its ``-wal``/``-shm`` 0600 too: they hold whole records, emails included); files found readable
by others are reported, not changed.
"""

from __future__ import annotations

import fcntl
import os
import stat

from ...errors import BufferInUse, BufferUnavailable
from ...logging import logger

_SIDE_FILES = ("", "-wal", "-shm", ".lock")


def claim_file(path: str) -> int:
    """Lock ``path + ".lock"`` for this process (until it ends, however it ends); return the fd.

    ``BufferInUse``, naming the pid written in the file, when another process holds it.
    """
    lock_path = path + ".lock"
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        report_shared_files(path)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BufferUnavailable(f"cannot open {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise BufferInUse(f"{path}: the buffer is in use by the daemon with pid {holder}; one daemon owns "
                          "a buffer (stop that one, or share work through the nats buffer)") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def report_shared_files(path: str) -> None:
    """Warn about the buffer's folder and files when others than their owner may read them."""
    for where in [os.path.dirname(os.path.abspath(path)), *(path + suffix for suffix in _SIDE_FILES)]:
        try:
            mode = stat.S_IMODE(os.stat(where).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            wanted = "0700" if os.path.isdir(where) else "0600"
            logger("buffer").warning("the buffer's records are readable by others", path=where, mode=f"{mode:04o}",
                                     detail=f"they hold whole deliveries, emails included: chmod {wanted[1:]} {where}")
