"""Silence PyBullet's ``argv[0]=`` line, printed by its C library once per physics client it connects.

A run of eight environments printed eight of them (and the evaluation env more) before its first line of its
own. :func:`silence_bullet_clients` wraps the constructor of PyBullet's ``BulletClient`` (what every
PyBullet environment connects with) so that its C-level stdout goes to /dev/null while it connects.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = ["c_stdout_silenced", "silence_bullet_clients"]


@contextlib.contextmanager
def c_stdout_silenced(stream: TextIO | None = None) -> Iterator[None]:
    """Send ``stream``'s file descriptor (default stdout) to /dev/null, C code's prints included, then restore it.

    Python exceptions raised inside still propagate (and print) after the descriptor is restored.
    """
    stream = sys.stdout if stream is None else stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture and other stand-ins have no descriptor
        yield
        return
    libc = ctypes.CDLL(None)
    stream.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            try:
                yield
            finally:
                libc.fflush(None)  # C's buffered output goes to /dev/null too
                os.dup2(saved, fd)
    finally:
        os.close(saved)


def silence_bullet_clients() -> None:
    """Make ``pybullet_utils.bullet_client.BulletClient`` connect without printing (idempotent)."""
    from pybullet_utils import bullet_client  # noqa: PLC0415

    init = bullet_client.BulletClient.__init__
    if getattr(init, "_silenced", False):
        return

    @functools.wraps(init)
    def quiet_init(self, *args, **kwargs) -> None:
        with c_stdout_silenced():
            init(self, *args, **kwargs)

    quiet_init._silenced = True  # type: ignore[attr-defined]
    bullet_client.BulletClient.__init__ = quiet_init
