"""The layout docs/architecture.md describes, kept: no import circle between modules, a
thin CLI, no oversized module, and no code citing a file outside the repository."""

from __future__ import annotations

import ast
import graphlib
import subprocess
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "music_tracker"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports, at any depth of the file (imports
    inside functions count: a circle dodged by a late import is still a circle)."""
    here = _module(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            # the longest known module the name starts with: `from x import y` names a
            # module y or a thing in module x
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here and not here.startswith(f"{name}."):
                found.add(name)
    return found


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_imports_one_that_imports_it_back() -> None:
    paths = _sources()
    known = {_module(p) for p in paths}
    graph = {_module(p): _imports(p, known) for p in paths}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as circle:
        raise AssertionError(f"import circle: {' -> '.join(circle.args[1])}") from None
    assert len(graph) > 50  # the walk found the package


def test_the_cli_is_thin_and_no_module_is_oversized() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in _sources()}
    assert sizes[PACKAGE / "cli.py"] < 700, sizes[PACKAGE / "cli.py"]
    large = {
        str(p.relative_to(PACKAGE)): n
        for p, n in sizes.items()
        if n > 800 and "fakes" not in p.parts
    }
    assert large == {}, large


def test_code_cites_only_what_the_repository_holds() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "src", "scripts", "transform", "dashboards", "deploy", "Makefile"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    assert len(tracked) > 100
    for name in tracked:
        path = REPO / name
        if path.suffix in {".whl", ".png", ".svg", ".json"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        assert "DESIGN.md" not in text, name
        assert "../shared" not in text, name


def test_paths_cited_in_the_repository_exist() -> None:
    """A module moved (warehouse.py into warehouse/) leaves no text naming its old file."""
    import re

    tracked = subprocess.run(
        ["git", "ls-files", "src", "transform", "requirements", "docs", "README.md"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    cited = re.compile(r"\b(?:src/music_tracker|music_tracker)/[\w/]+\.py\b|\bwarehouse\.py\b")
    missing = []
    for name in tracked:
        path = REPO / name
        if path.suffix in {".whl", ".png", ".svg", ".json", ".duckdb"} or not path.is_file():
            continue
        for match in cited.finditer(path.read_text(errors="replace")):
            text = match.group()
            relative = "src/music_tracker/warehouse.py" if text == "warehouse.py" else text
            file = REPO / (relative if relative.startswith("src/") else f"src/{relative}")
            if not file.is_file():
                missing.append(f"{name}: {text}")
    assert missing == [], missing
