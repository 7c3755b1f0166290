"""The import boundaries of docs/architecture.md, checked from the source.

Static: every ``bot/`` and ``adapters/`` module is parsed (not imported), so the
check is fast and needs no optional package.  Every import counts, including
those inside functions and under ``TYPE_CHECKING``: an import moved into a
function or a type-checking block still ties the two modules together.  So do
``importlib.import_module`` calls: with a literal name, that module; with an
f-string (``f"adapters.{platform}"``), every module its literal start can reach.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Each platform's SDK, by the adapter package that alone may import it.
CHAT_SDKS: dict[str, frozenset[str]] = {
    "adapters.slack": frozenset({"slack_bolt", "slack_sdk"}),
    "adapters.matrix": frozenset({"nio"}),
    "adapters.discord": frozenset({"discord"}),
}
#: Database drivers and ORM: only bot.store may import them.
DATABASE_PACKAGES = frozenset({"sqlalchemy", "psycopg", "psycopg_pool", "pgvector", "pgserver"})
#: The model runtime: only bot.inference may import it.
MODEL_RUNTIME = frozenset({"llama_cpp"})
#: The core's public surface for adapters: the protocol they implement, the events
#: they emit, errors, settings, the file-type rules and the command declarations.
ADAPTER_SURFACE = frozenset(
    {
        "bot.adapter",
        "bot.events",
        "bot.errors",
        "bot.config",
        "bot.ingest.filetypes",
        "bot.command_spec",
    }
)
#: The one place that wires adapters into the core.
ADAPTER_WIRING = frozenset({"bot.cli.run"})


@dataclass(frozen=True)
class Import:
    """One import statement's target, as written and as resolved to our module."""

    importer: str
    name: str  # the dotted name imported ("sqlalchemy.orm", "bot.store.repo.Store")
    module: str | None  # our module it loads, or None for a third-party import
    line: int

    @property
    def top(self) -> str:
        return self.name.split(".")[0]

    def where(self) -> str:
        return f"{self.importer} (line {self.line}) imports {self.name}"


def _our_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in ("bot", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


MODULES = _our_modules()


def _ours(name: str) -> str | None:
    """The longest prefix of ``name`` that is one of our modules."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> list[Import]:
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from bot.ingest import filetypes` loads the submodule, not just the package.
            names = [f"{source}.{alias.name}" for alias in node.names]
            names = [n for n in names if n in MODULES] or [source]
        elif isinstance(node, ast.Call) and _calls_import_module(node):
            names = _dynamic_names(node.args[0])
        else:
            continue
        for name in names:
            found.append(Import(module, name, _ours(name), node.lineno))
    return found


def _calls_import_module(node: ast.Call) -> bool:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return name == "import_module" and bool(node.args)


def _dynamic_names(arg: ast.expr) -> list[str]:
    """The modules an ``import_module`` argument can name."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)
        reached = [m for m in MODULES if m.startswith(prefix) and m != prefix.rstrip(".")]
        return reached or [prefix.rstrip(".")]
    return []


IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_core_imports_no_chat_sdk_and_each_adapter_only_its_own() -> None:
    wrong = [
        imp.where()
        for imp in IMPORTS
        for owner, sdks in CHAT_SDKS.items()
        if imp.top in sdks and not _in(imp.importer, owner)
    ]
    assert not wrong, "chat SDKs imported outside their adapter:\n" + "\n".join(wrong)


def test_only_the_store_touches_the_database() -> None:
    wrong = [
        imp.where()
        for imp in IMPORTS
        if imp.top in DATABASE_PACKAGES and not _in(imp.importer, "bot.store")
    ]
    assert not wrong, "database packages imported outside bot/store:\n" + "\n".join(wrong)


def test_only_inference_touches_llama_cpp() -> None:
    wrong = [
        imp.where()
        for imp in IMPORTS
        if imp.top in MODEL_RUNTIME and not _in(imp.importer, "bot.inference")
    ]
    assert not wrong, "llama_cpp imported outside bot/inference:\n" + "\n".join(wrong)


def test_adapters_use_only_the_cores_public_surface() -> None:
    wrong = [
        imp.where()
        for imp in IMPORTS
        if _in(imp.importer, "adapters")
        and imp.module is not None
        and _in(imp.module, "bot")
        and imp.module not in ADAPTER_SURFACE
    ]
    assert not wrong, "adapters reaching into the core:\n" + "\n".join(wrong)


def test_adapters_import_no_other_adapter() -> None:
    def platform(module: str) -> str:
        return ".".join(module.split(".")[:2])

    wrong = [
        imp.where()
        for imp in IMPORTS
        if _in(imp.importer, "adapters")
        and imp.module is not None
        and _in(imp.module, "adapters")
        and imp.module != "adapters.base"
        and platform(imp.module) != platform(imp.importer)
    ]
    assert not wrong, "one adapter importing another:\n" + "\n".join(wrong)


def test_the_core_reaches_adapters_only_where_they_are_wired() -> None:
    wrong = [
        imp.where()
        for imp in IMPORTS
        if _in(imp.importer, "bot")
        and imp.module is not None
        and _in(imp.module, "adapters")
        and imp.importer not in ADAPTER_WIRING
    ]
    assert not wrong, "the core importing adapters:\n" + "\n".join(wrong)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in IMPORTS:
        if imp.module is not None and imp.module != imp.importer:
            edges[imp.importer].add(imp.module)
    return edges


def test_no_import_cycle_among_our_modules() -> None:
    cycles = _cycles(_edges())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_an_import_by_name_counts_like_an_import_statement() -> None:
    edges = _edges()
    # bot.cli.run wires adapters by f"adapters.{platform}"; formats dispatch by name.
    assert {"adapters.slack", "adapters.matrix", "adapters.discord"} <= edges["bot.cli.run"]
    assert "bot.ingest.formats.office" in edges["bot.ingest.formats"]
    assert "adapters.discord.adapter" in edges["adapters.discord"]


# -- the size of a module ----------------------------------------------------------------

#: Past this many lines, a module of bot/ says at its top why it is one unit.
LONG_MODULE_LINES = 600


def test_a_long_module_of_the_core_says_at_its_top_why_it_is_one_unit() -> None:
    unexplained = []
    for module, path in sorted(MODULES.items()):
        lines = path.read_text(encoding="utf-8").count("\n")
        if not _in(module, "bot") or lines <= LONG_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if f"over {LONG_MODULE_LINES} lines" not in docstring.replace("\n", " "):
            unexplained.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not unexplained, (
        f"modules over {LONG_MODULE_LINES} lines whose docstring does not say "
        f"(in words holding 'over {LONG_MODULE_LINES} lines') why they are one unit:\n"
        + "\n".join(unexplained)
    )
