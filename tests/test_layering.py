"""The package's structure, read from its source (nothing is imported): no import cycle, and the
interfaces a search and the gymnasium layer offer stay small."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import optarena

PACKAGE = Path(optarena.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_only(tree: ast.Module) -> set[int]:
    """The nodes under ``if TYPE_CHECKING:`` (imports for annotations, never run)."""
    return {id(node) for branch in ast.walk(tree)
            if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
            for node in ast.walk(branch)}


def import_graph() -> dict[str, set[str]]:
    """Each module of optarena and the modules of optarena it imports when it runs: at the top
    or in a function, a package's ``__init__`` included when a module beneath it is imported
    (but not the importer's own packages, which are being imported already)."""
    paths = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text())
        skipped = _type_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets += [base, *(f"{base}.{alias.name}" for alias in node.names)]
        graph[name] = set()
        for target in targets:
            while target:  # the module itself, then the packages it is in
                if target in paths and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
                target = target.rpartition(".")[0]
    return graph


def test_no_module_of_optarena_imports_itself_through_others():
    graph = import_graph()
    assert "optarena.envs.tensor_schedule.prior" in graph["optarena.experiments.prior_cli"]
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def _members(path: Path, name: str) -> list[str]:
    """The methods, properties and annotated attributes a class defines itself."""
    (cls,) = [node for node in ast.walk(ast.parse(path.read_text()))
              if isinstance(node, ast.ClassDef) and node.name == name]
    return [node.name if isinstance(node, ast.FunctionDef) else ast.unparse(node.target)
            for node in cls.body if isinstance(node, ast.FunctionDef | ast.AnnAssign)]


def test_the_search_oracle_and_the_gymnasium_layer_stay_small():
    oracle = _members(PACKAGE / "envs" / "contract.py", "SearchOracle")
    assert {"transition", "legal_mask", "evaluate", "unmeasured", "estimate", "problem",
            "evaluator"} <= set(oracle) and len(oracle) <= 12, oracle
    methods = [m for m in _members(PACKAGE / "envs" / "base.py", "ArenaEnv")
               if m not in ("metadata", "prompt_family", "problem_kwargs")]
    assert len(methods) <= 25, methods
