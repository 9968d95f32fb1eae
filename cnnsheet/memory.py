"""How the process uses memory: freed blocks kept for training, the cycle collector paused while
a workbook is planned and written.

Both change the whole process, so only its entry point (cli.py) calls them: the library is
called from notebooks and servers too, whose memory and collector are their own.

Training (glibc only; elsewhere a no-op): a step allocates and frees the same few large arrays
(im2col windows, gradients) every time. By default glibc hands blocks that large back to the
kernel on free and page-faults them in again on the next step, which measured at about half the
step time of the default network here. Raising the mmap and trim thresholds keeps them in the
heap for reuse.
"""

import contextlib
import ctypes
import gc
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGEST_HEAP_BLOCK = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


def keep_freed_memory() -> bool:
    """Ask glibc to reuse large freed blocks; True if it agreed. For the rest of the process:
    glibc cannot tell the thresholds it had, so they cannot be put back."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)
                    and libc.mallopt(M_TRIM_THRESHOLD, 4 * LARGEST_HEAP_BLOCK))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


@contextlib.contextmanager
def no_cycle_collection():
    """Pause Python's cyclic garbage collector (usable as a decorator too). A workbook's plan is
    hundreds of thousands of small tuples and strings, none of them in a cycle, and the collector
    scanned them again and again as they were made: 0.05 s of the default walkthrough's 0.36 s
    plan (measured), more for larger ones. Nothing here is freed by it either way. Re-enabled
    while the plan lives, it scans it all once more (0.03 s): `cnnsheet explain` keeps it off
    for the whole command, until the plan is gone."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
