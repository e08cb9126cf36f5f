"""The flows, one module each, run as ``python -m flows.<name>``."""

import sys

if "--multiprocessing-fork" in sys.orig_argv:
    # A process pool worker (spawned) imports its parent's main module, flows.<name>, for
    # seconds: a Ctrl-C meanwhile (the terminal signals the whole process group) would end
    # it with a traceback of its own. The parent stops its pools; workers leave Ctrl-C to it.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
