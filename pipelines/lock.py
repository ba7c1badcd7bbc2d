"""One writer per stage output: an exclusive lock beside it, which also carries a heartbeat.

Locally the lock is a file (`<dataset>/raw.lock`, `runs/<run>.lock`, ...) held with
`flock`: the kernel releases it the moment its process dies, so a lock whose process is
gone is simply taken by the next run. The file holds the holder (host, pid, start time,
command) and, while it runs, a heartbeat (epoch, step, loss, ETA ...) that `status`
reads. A clean exit removes it; a killed run leaves it behind with nobody holding it,
which `status` reports as stopped.

On object storage there is no flock: the lock is a lease object with an expiry, renewed
by a background thread. A lease whose expiry has passed, or whose process is known to be
gone (same host, no such pid), is taken over. Two runs starting within the same second
can both write a lease; each reads it back after a pause and only the one whose token
stayed goes on.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from asar_data import storage
from asar_data.errors import AsarError

LEASE_TTL_S = 60.0
LEASE_SETTLE_S = 1.0
WAIT_POLL_S = 0.5
BEAT_MIN_INTERVAL_S = 2.0

State = Literal["free", "running", "stopped"]


@dataclass
class Holder:
    """Who holds (or last held) a lock, and its latest heartbeat."""

    host: str
    pid: int
    started: float
    command: str
    token: str = ""
    expires: float | None = None          # leases only
    beat: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{self.command} (pid {self.pid} on {self.host}, since {since})"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            raw = json.loads(text)
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (ValueError, TypeError, KeyError):
            return None


class LockHeld(AsarError):
    """Another run holds the output's lock."""

    def __init__(self, what: str, holder: Holder | None):
        self.holder = holder
        who = holder.describe() if holder else "another run"
        super().__init__(f"{what} is being written by {who}: wait for it, or rerun with --wait")


def _me(command: str) -> Holder:
    return Holder(socket.gethostname(), os.getpid(), time.time(), command, uuid.uuid4().hex)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class OutputLock:
    """The exclusive lock of one output. Use as a context manager, or acquire/release.

    location: the lock file (path or URL); what: the output in words, for messages;
    command: what the holder runs (``"ingest ntu60"``).
    """

    def __init__(self, location: str, what: str, command: str):
        self.location = location
        self.what = what
        self.holder = _me(command)
        self._fd: int | None = None
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_beat = 0.0

    # -- acquire / release --------------------------------------------------------------
    def acquire(self, wait: bool = False, on_wait: Any = None) -> OutputLock:
        """Take the lock; when another live run holds it, raise `LockHeld` or (``wait``)
        poll until it is free, calling ``on_wait(holder)`` once."""
        told = False
        while True:
            holder = self._try_acquire()
            if holder is None:
                return self
            if not wait:
                raise LockHeld(self.what, holder)
            if on_wait is not None and not told:
                on_wait(holder)
                told = True
            time.sleep(WAIT_POLL_S)

    def release(self) -> None:
        """Give the lock back and remove its file (only while it is ours)."""
        if storage.is_url(self.location):
            self._stop.set()
            if self._renewer is not None:
                self._renewer.join()
            with contextlib.suppress(Exception):
                current = Holder.parse(storage.read_text(self.location))
                if current is not None and current.token == self.holder.token:
                    storage.remove(self.location)
            return
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.location)  # while still held: nobody can lock the old inode
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def beat(self, force: bool = False, **fields: Any) -> None:
        """Record progress (epoch, step, loss, eta_s, ...) for `status`; rate-limited."""
        self.holder.beat.update(fields, time=time.time())
        now = time.monotonic()
        if not force and now - self._last_beat < BEAT_MIN_INTERVAL_S:
            return
        self._last_beat = now
        with contextlib.suppress(OSError):
            self._write_holder()

    # -- local files: flock ---------------------------------------------------------------
    def _try_acquire(self) -> Holder | None:
        """None when the lock is now ours, else the live holder."""
        if storage.is_url(self.location):
            return self._try_lease()
        import fcntl

        folder = os.path.dirname(os.path.abspath(self.location))
        os.makedirs(folder, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.location, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                holder = read_holder(self.location)
                if holder is not None and holder.host == self.holder.host and \
                        not _pid_alive(holder.pid):
                    time.sleep(0.05)  # its process is gone: a status probe holds it a moment
                    continue
                return holder or Holder("?", 0, time.time(), "another run")
            # the file may have been removed (released) between our open and flock
            try:
                same = os.fstat(fd).st_ino == os.stat(self.location).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self._fd = fd
            self._write_holder()
            return None
        raise AsarError(f"cannot lock {self.location}: it keeps changing; is another "
                        "program removing files in the workspace?")

    def _write_holder(self) -> None:
        if storage.is_url(self.location):
            self.holder.expires = time.time() + LEASE_TTL_S
            storage.write_text(self.location, self.holder.to_json())
            return
        if self._fd is None:
            return
        data = self.holder.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    # -- object storage: leases -----------------------------------------------------------
    def _try_lease(self) -> Holder | None:
        current = read_holder(self.location)
        if current is not None and _lease_alive(current):
            return current
        self._write_holder()
        time.sleep(LEASE_SETTLE_S)
        current = read_holder(self.location)
        if current is None or current.token != self.holder.token:
            return current or Holder("?", 0, time.time(), "another run")
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, daemon=True)
        self._renewer.start()
        return None

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_TTL_S / 3):
            with contextlib.suppress(Exception):
                self._write_holder()


def _lease_alive(holder: Holder) -> bool:
    """A lease holds until it expires, unless its process is known to be gone (this host)."""
    if (holder.expires or 0) <= time.time():
        return False
    return holder.host != socket.gethostname() or _pid_alive(holder.pid)


def read_holder(location: str) -> Holder | None:
    """The holder recorded in a lock file (None when there is none or it is unreadable)."""
    try:
        return Holder.parse(storage.read_text(location))
    except (FileNotFoundError, OSError, UnicodeDecodeError):
        return None


def inspect(location: str) -> tuple[State, Holder | None]:
    """Whether a lock is held by a live run ("running"), was left by a run that is gone
    ("stopped"), or absent ("free"); with the holder and its last heartbeat."""
    if storage.is_url(location):
        holder = read_holder(location)
        if holder is None:
            return "free", None
        return ("running" if _lease_alive(holder) else "stopped"), holder
    holder = read_holder(location)
    if not os.path.exists(location):
        return "free", None
    import fcntl

    try:
        fd = os.open(location, os.O_RDONLY)
    except FileNotFoundError:
        return "free", None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return "running", holder
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return ("stopped" if holder is not None else "free"), holder
