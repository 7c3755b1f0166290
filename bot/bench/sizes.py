"""How much each benchmark runs, in full and with ``--quick``.

Declared here, apart from the benchmarks, because the command line's help states them
and must not import the benchmarks to do so (they load the whole app).
"""

from __future__ import annotations

# ``librarian bench grounding``: the sets it knows, and those it runs unless told which.
GROUNDING_SETS = ("squad", "realdocs", "chinese")
GROUNDING_DEFAULT_SETS = ("squad", "realdocs")
# SQuAD v2.0 questions of each kind (answerable, unanswerable) in a full run.
SQUAD_PER_KIND = 100
# The --quick run CI makes: questions per kind (SQuAD, Chinese) and real-document
# questions.  Each answered question costs the model ~5 s on two cores; the quick run
# checks that every step runs and reports, not the rates, so a couple of each will do.
QUICK_PER_KIND = 2
QUICK_REALDOCS = 3

# ``librarian bench load``: questions asked at once, the channels they are spread over,
# the tokens per second each stand-in server streams, and the pool sizes compared.
LOAD_MENTIONS = 200
LOAD_CHANNELS = 20
LOAD_RATE = 20.0
LOAD_SERVERS = (1, 2, 4)
QUICK_LOAD_MENTIONS = 30
QUICK_LOAD_CHANNELS = 6
QUICK_LOAD_SERVERS = (1, 2)
