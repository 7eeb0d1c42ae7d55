"""The control plane's one clock: what "now" is for every rule about time.

The health round, the status, the warm-up, the drain, the rolling reboot and its one node out
at a time, the join and delete leases and a software update's checks all take their ``now``
from here. It is Django's ``timezone.now()`` plus an offset read from the file named by
``settings.CLOCK_OFFSET_FILE`` (``FLOTILLA_CLOCK_OFFSET_FILE``): only the tests set it, so that
they move the time for their own process and the worker at once (the worker inherits the
variable) instead of editing rows behind the health round's back, and never sleep. Production
never sets it: the offset is then zero and nothing is read. Timestamps kept only for display
(an event's time) are not taken from here.
"""

import os
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

ZERO = timedelta(0)
_last = (None, ZERO)  # (what identifies the file read, its offset): one object, safe across threads


def offset():
    """The offset now in force: zero without the setting or the file."""
    global _last
    path = getattr(settings, "CLOCK_OFFSET_FILE", None)
    if not path:
        return ZERO
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return ZERO
    # Read again only when the file changed (it is replaced whole, so its inode changes too).
    key = (path, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)
    last = _last
    if last[0] == key:
        return last[1]
    try:
        with open(path) as f:
            seconds = float(f.read().strip() or 0)
    except FileNotFoundError:
        return ZERO
    moved = timedelta(seconds=seconds)
    _last = (key, moved)
    return moved


def now():
    return timezone.now() + offset()


def reading():
    """A clock that keeps the offset in force now: a health round reads the time from one clock,
    so that a move half way through never makes its own earlier answers look old."""
    delta = offset()
    return lambda: timezone.now() + delta
