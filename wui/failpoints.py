"""Crash points: a worker that dies between two steps, on purpose, where a test asks for it.

``FLOTILLA_FAILPOINTS=join.after_accept,...`` makes the process SIGKILL itself when it reaches
one of the named points, as a power cut or the OOM killer would; unset, it does nothing. The
tests use it to prove that every step of a task can die half way and be resumed from the rows.
"""

import os
import signal

ARMED = frozenset(filter(None, os.environ.get("FLOTILLA_FAILPOINTS", "").split(",")))


def reached(name):
    if name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
