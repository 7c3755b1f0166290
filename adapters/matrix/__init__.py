"""Matrix: the bot as a Matrix account (matrix-nio), answering in rooms it is invited to.

Only this package imports matrix-nio.  ``translate`` holds the pure event rules,
``adapter`` the client, the sync loop and the adapter protocol.
"""

from adapters.matrix.adapter import MatrixAdapter, MatrixError

__all__ = ["MatrixAdapter", "MatrixError"]
