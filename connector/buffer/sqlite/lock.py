"""One daemon per SQLite buffer: an exclusive lock on ``<database>.lock`` that names its holder."""

from __future__ import annotations

import fcntl
import os

from ...errors import BufferInUse, BufferUnavailable


def claim_file(path: str) -> int:
    """Lock ``path + ".lock"`` for this process (until it ends, however it ends); return the fd.

    ``BufferInUse``, naming the pid written in the file, when another process holds it.
    """
    lock_path = path + ".lock"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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
