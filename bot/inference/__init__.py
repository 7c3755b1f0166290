"""Local inference: model registry, conversion, quantization and runtimes.

Only this package may import ``llama_cpp``; everything else talks to the objects
defined here.  Submodules are imported explicitly (``from bot.inference import
registry``) so that importing the package stays cheap.
"""

import os as _os

# llama.cpp's CPU backend runs each graph in an OpenMP parallel region.  With
# libgomp's default (active) wait policy the idle threads spin between tokens,
# fighting the event loop and any other process for the cores: on a busy
# 2-core machine generation fell from ~30 to ~1-3 tokens/s.  PASSIVE makes them
# sleep instead.  libgomp reads this once, when llama.cpp's library is loaded,
# so it is set here, before any submodule imports llama_cpp; an explicit
# OMP_WAIT_POLICY in the environment still wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
