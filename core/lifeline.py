"""Child processes that end with their parent, however it ends.

A parent that is SIGKILLed (or crashes) runs no clean-up, and a child it started (the
temporary Prefect server, a process pool's workers) would keep running for good. Each
child calls ``watch_parent`` as it starts (the server first thing; a pool worker in its
initializer, once it has imported its parent's main module): a daemon thread that ends the
child once its parent is gone (the child is then adopted by another process, so its parent
pid changes). Standard library only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

POLL_SECONDS = 0.5


def _watch(parent: int, poll: float) -> None:
    while os.getppid() == parent:
        time.sleep(poll)
    os._exit(0)  # no clean-up to wait for: the parent that needed this child is gone


def watch_parent(parent: int, poll: float = POLL_SECONDS) -> None:
    """End this process within ``poll`` seconds of its parent ``parent`` (a pid) ending."""
    if os.getppid() != parent:  # already orphaned while starting
        os._exit(0)
    threading.Thread(target=_watch, args=(parent, poll), name="lifeline", daemon=True).start()


def pool_worker(parent: int) -> None:
    """A process pool worker's initializer: it ends with ``parent`` and leaves Ctrl-C (sent
    to the terminal's whole process group) to the parent, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch_parent(parent)


# the resource tracker of a pool whose parent ended abruptly (a SIGKILL, a hard exit) cleans
# up the pool's semaphores and warns of them on the terminal; it is started with this
# interpreter's -W options (``sys.warnoptions``)
TRACKER_WARNING = "ignore::UserWarning:multiprocessing.resource_tracker"


def quiet_tracker() -> None:
    """Before a process pool starts: its resource tracker will clean up without a warning."""
    if TRACKER_WARNING not in sys.warnoptions:
        sys.warnoptions.append(TRACKER_WARNING)
