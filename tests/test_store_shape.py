"""The Store is assembled from parts (repo.py and its documents, history, audit, search,
feedback and events sides); no part may define a name another part defines, or one
would silently hide the other.

Session 6 met it: the queue's ``workspace_chunk_count(ws, excluding=)`` shadowed the
search side's ``workspace_chunk_count(ws, model)`` and broke ``bench retrieval``, with
every test green.  Part of the fast tier: classes and source only, no database.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections import defaultdict

from bot.store.repo import Store
from bot.store.search import SearchMixin


def _parts(cls: type) -> list[type]:
    return [part for part in cls.__mro__ if part is not object]


def _assigned_on_self(part: type) -> set[str]:
    """Attributes a part's methods assign on ``self`` (``self.engine = ...``)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(part)))
    names = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                names.add(target.attr)
    return names


def defined_twice(cls: type) -> dict[str, list[str]]:
    """Names (methods, class attributes, attributes set on self) held by two of cls's parts."""
    owners: defaultdict[str, list[str]] = defaultdict(list)
    for part in _parts(cls):
        declared = {n for n in vars(part) if not (n.startswith("__") and n.endswith("__"))}
        for name in sorted(declared | _assigned_on_self(part)):
            owners[name].append(part.__name__)
    return {name: parts for name, parts in owners.items() if len(parts) > 1}


def test_no_part_of_the_store_defines_a_name_another_part_defines() -> None:
    assert [part.__name__ for part in _parts(Store)] == [
        "Store",
        "DocumentsMixin",
        "HistoryMixin",
        "AuditMixin",
        "SearchMixin",
        "WorkspaceIndexMixin",
        "FeedbackMixin",
        "EventsMixin",
    ]
    assert defined_twice(Store) == {}


# Two ways a part can hide another's method (module level: inspect reads their source).


class QueueSide:
    def workspace_chunk_count(self, workspace_id: int, excluding: int | None = None) -> int:
        return 0


class MergedStore(QueueSide, SearchMixin):
    """What the session-6 merge made, had the queue's side been a part of its own."""


class SetOnSelf:
    def __init__(self) -> None:
        self.search_dense = None  # an attribute set in __init__ hides a method the same


class HiddenSearch(SetOnSelf, SearchMixin):
    """A part setting an attribute named like another part's method."""


def test_the_shadowing_session_6_met_is_caught() -> None:
    assert defined_twice(MergedStore) == {"workspace_chunk_count": ["QueueSide", "SearchMixin"]}
    assert defined_twice(HiddenSearch) == {"search_dense": ["SetOnSelf", "SearchMixin"]}
