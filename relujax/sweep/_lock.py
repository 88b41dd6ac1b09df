"""A lock file that keeps two processes from writing one directory at once."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any

#: The lock file's name inside the locked directory.
LOCK_NAME = ".relujax.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class DirectoryLock:
    """An exclusive lock on a directory: ``<directory>/.relujax.lock`` holding the owner's pid.

    The file is created with ``O_CREAT | O_EXCL``, so of two processes only one gets it; the
    other fails at once with an error naming the owner. A lock left by a process that no
    longer runs (same host, pid gone) is stale and taken over. Use it as a context manager,
    or call :meth:`acquire` and :meth:`release`.

    Args:
      directory: the directory to lock (created if missing).

    Raises:
      RuntimeError: from :meth:`acquire`, when a live process (or one on another host, whose
        liveness cannot be checked) holds the lock.

    Examples:
      >>> import os, tempfile
      >>> from relujax import sweep
      >>> d = tempfile.mkdtemp()
      >>> with sweep.DirectoryLock(d):
      ...     os.path.exists(os.path.join(d, ".relujax.lock"))
      True
      >>> os.path.exists(os.path.join(d, ".relujax.lock"))
      False
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        self.path = os.path.join(self.directory, LOCK_NAME)
        self._held = False

    def _write(self, pid: int) -> None:
        """Create the lock file for ``pid`` (``FileExistsError`` if there is one)."""
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        owner = {"pid": pid, "host": socket.gethostname(), "since": time.time()}
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)

    def _owner(self) -> dict[str, Any] | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable (being written, or truncated)

    def acquire(self) -> DirectoryLock:
        """Take the lock, or raise ``RuntimeError`` naming the process that holds it."""
        for _ in range(3):
            try:
                self._write(os.getpid())
                self._held = True
                return self
            except FileExistsError:
                pass
            owner = self._owner()
            if owner is None:
                continue  # released meanwhile: try again
            pid, host = owner.get("pid"), owner.get("host")
            if isinstance(pid, int) and host == socket.gethostname() and not _alive(pid):
                # Stale: move it aside atomically (one of several contenders wins), retry.
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.path, f"{self.path}.stale.{os.getpid()}")
                    os.unlink(f"{self.path}.stale.{os.getpid()}")
                continue
            where = f"process {pid} on host {host}" if owner else "another process"
            raise RuntimeError(
                f"{self.directory} is in use by {where} "
                f"(lock file {self.path}). Two runs writing one directory would corrupt it: "
                "wait for the other run to finish, or give this one another directory. If no "
                "such process runs any more, delete the lock file."
            )
        raise RuntimeError(f"could not take the lock {self.path}; another process keeps taking it.")

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self._held:
            return
        self._held = False
        owner = self._owner()
        if owner and owner.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
