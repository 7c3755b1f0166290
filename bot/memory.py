"""This process's memory: resident now, and its peak (for status and the benchmarks)."""

from __future__ import annotations

import os
import resource
import sys


def peak_rss_bytes() -> int:
    """The most this process has held resident (``ru_maxrss``: kilobytes on Linux,
    bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_bytes() -> int:
    """Resident memory of this process now (Linux), or its peak where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()
