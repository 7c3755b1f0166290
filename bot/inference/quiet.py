"""Keep llama.cpp quiet without touching the process's stdout and stderr.

llama-cpp-python silences model loading (``verbose=False``) with
``suppress_stdout_stderr``, which ``dup2``s /dev/null over file descriptors 1 and 2
and swaps ``sys.stdout``/``sys.stderr`` for the whole process.  We load models on
worker threads while the event loop keeps writing (the console adapter prints
answers to stdout): whatever the loop wrote during a load vanished, and two loads
overlapping on two threads could leave stdout pointing at /dev/null for good.

So the redirection is replaced by a no-op, and llama.cpp's own log lines go to the
Python logger ``llama.cpp`` at DEBUG level instead of the terminal.  Importing this
module applies both, once.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging

import llama_cpp
import llama_cpp._internals
import llama_cpp.llama
import llama_cpp.llama_chat_format

log = logging.getLogger("llama.cpp")


class _NoRedirect(contextlib.AbstractContextManager):
    """Stands in for llama_cpp's suppress_stdout_stderr: redirects nothing."""

    def __init__(self, disable: bool = True) -> None:
        self.disable = disable

    def __exit__(self, *exc: object) -> None:
        return None


@llama_cpp.llama_log_callback
def _to_logging(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # Never raise into C: a failure to decode just drops the line.
    with contextlib.suppress(Exception):
        line = text.decode("utf-8", "replace").rstrip()
        if line:
            log.debug("%s", line)


for _module in (llama_cpp.llama, llama_cpp._internals, llama_cpp.llama_chat_format):
    if hasattr(_module, "suppress_stdout_stderr"):
        _module.suppress_stdout_stderr = _NoRedirect  # type: ignore[attr-defined]

# Keep a reference to the callback for the life of the process: C holds a raw pointer.
llama_cpp.llama_log_set(_to_logging, ctypes.c_void_p(0))
