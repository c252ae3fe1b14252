"""``python -m trioapi migrate``: port a FastAPI code base's imports to trioapi.

    python -m trioapi migrate app/ tests/            show the changes (a unified diff)
    python -m trioapi migrate --write app/ tests/    make them
    python -m trioapi migrate --check app/           exit 1 if anything is left to port

What it changes, in Python code only (strings and comments are left alone):

- ``fastapi`` and its submodules become ``trioapi``'s (``fastapi.responses``
  → ``trioapi.responses``), and the name ``FastAPI`` becomes ``TrioAPI``;
- ``from starlette.X import a, b`` becomes ``from trioapi.X import a, b``
  when ``trioapi.X`` has every one of those names (FastAPI's docs import
  ``HTTPException``, ``Request``, ``status``, responses and middleware from
  Starlette this way); ``import starlette.X`` and ``starlette.X.name`` in
  code become ``trioapi.X`` when the whole file can be ported.

An import trioapi has no counterpart for is left as it is and reported with
the names that are missing, so nothing is changed into code that cannot
import. What the tool decides comes from the installed trioapi itself (it
imports ``trioapi.X`` and looks for the names), not from a fixed table.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import io
import sys
import tokenize
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

_NAMED_MODULES = ("trioapi", "trioapi.exceptions", "trioapi.applications")


def _renamed() -> dict[str, str]:
    # FastAPI's names that trioapi spells with its own: FastAPI, FastAPIError,
    # FastAPIDeprecationWarning... read from trioapi's public modules.
    table: dict[str, str] = {}
    for module_name in _NAMED_MODULES:
        module = importlib.import_module(module_name)
        for name in dir(module):
            if "TrioAPI" in name and not name.startswith("_"):
                table[name.replace("TrioAPI", "FastAPI")] = name
    return table


_RENAMED = _renamed()
_SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "__pycache__", ".nox", ".tox", "node_modules"})


@attrs.frozen
class Left:
    """An import the tool did not port, and why."""

    line: int
    module: str
    why: str


@attrs.frozen
class Ported:
    """One file's new text and what was left."""

    text: str
    left: tuple[Left, ...]


def _target(module: str) -> str:
    _, _, rest = module.partition(".")
    return "trioapi" + ("." + rest if rest else "")


def _module_exists(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _missing(module: str, names: Sequence[str]) -> list[str]:
    try:
        target = importlib.import_module(module)
    except ImportError:
        return list(names)
    missing = []
    for name in names:
        if name == "*":
            continue
        found = hasattr(target, _RENAMED.get(name, name)) or _module_exists(f"{module}.{name}")
        if not found:
            missing.append(name)
    return missing


def _is_ours(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in ("fastapi", "starlette")


def port_source(text: str) -> Ported:
    """``text`` with its FastAPI and Starlette imports ported (see the module docstring).

    Raises:
        SyntaxError: ``text`` is not valid Python.
    """
    tree = ast.parse(text)
    left: list[Left] = []
    ported_rows: set[int] = set()  # rows of import statements that are ported
    kept_rows: set[int] = set()  # rows of import statements left as they are
    plain_starlette: list[ast.Import] = []  # ``import starlette.x`` statements
    starlette_everywhere = True  # every starlette import ports: so can its uses
    kept_names: set[str] = set()  # bound by imports left as they are: not renamed
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_ours(node.module):
            assert node.module is not None
            target = _target(node.module)
            missing = _missing(target, [alias.name for alias in node.names])
            rows = _rows(node)
            if missing:
                left.append(Left(node.lineno, node.module, f"{target} has no {', '.join(missing)}"))
                kept_rows |= rows
                kept_names.update(alias.asname or alias.name for alias in node.names)
                starlette_everywhere &= not node.module.startswith("starlette")
            else:
                ported_rows |= rows
        elif isinstance(node, ast.Import) and any(_is_ours(alias.name) for alias in node.names):
            absent = [
                alias.name
                for alias in node.names
                if _is_ours(alias.name) and not _module_exists(_target(alias.name))
            ]
            rows = _rows(node)
            if absent:
                for name in absent:
                    left.append(Left(node.lineno, name, f"there is no {_target(name)}"))
                kept_rows |= rows
                starlette_everywhere &= not any(name.startswith("starlette") for name in absent)
            elif any(alias.name.split(".")[0] == "starlette" for alias in node.names):
                # ``import starlette.x`` binds ``starlette``: ported with its uses, or not at all.
                plain_starlette.append(node)
            else:
                ported_rows |= rows
    for statement in plain_starlette:
        if starlette_everywhere:
            ported_rows |= _rows(statement)
        else:
            kept_rows |= _rows(statement)
            why = "another starlette import of this file stays, so this one does too"
            left.append(Left(statement.lineno, "starlette", why))
    new = _rewrite(text, ported_rows, kept_rows, kept_names, starlette_everywhere)
    return Ported(new, tuple(sorted(left, key=lambda item: item.line)))


def _rows(node: ast.stmt) -> set[int]:
    return set(range(node.lineno, (node.end_lineno or node.lineno) + 1))


def _rewrite(
    text: str,
    ported_rows: set[int],
    kept_rows: set[int],
    kept_names: set[str],
    starlette_everywhere: bool,
) -> str:
    # Token by token, so that formatting, strings and comments stay as they are.
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # (row, start col, end col, new text)
    after_dot = False
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.NL, tokenize.COMMENT):
            continue
        if token.type != tokenize.NAME:
            after_dot = token.type == tokenize.OP and token.string == "."
            continue
        row, col = token.start
        name = token.string
        attribute = after_dot  # ``x.fastapi`` is some other object's attribute
        after_dot = False
        if row in kept_rows:
            continue
        replacement: str | None = None
        module_name = not attribute and (
            name == "fastapi"
            or (name == "starlette" and (row in ported_rows or starlette_everywhere))
        )
        if module_name:
            replacement = "trioapi"
        elif name in _RENAMED and name not in kept_names:
            replacement = _RENAMED[name]
        if replacement is not None:
            edits.append((row, col, token.end[1], replacement))
    for row, start, end, replacement in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + replacement + line[end:]
    return "".join(lines)


def python_files(paths: Sequence[str]) -> Iterator[Path]:
    """The ``.py`` files under ``paths`` (files as given, folders recursively)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for found in sorted(path.rglob("*.py")):
                if not _SKIPPED_DIRS.intersection(found.relative_to(path).parts[:-1]):
                    yield found
        else:
            yield path


def main(argv: Sequence[str] | None = None, out: io.TextIOBase | None = None) -> int:
    """The command. Returns 0, or 1 when ``--check`` finds something to port (or left)."""
    parser = argparse.ArgumentParser(
        prog="python -m trioapi migrate",
        description="Port a FastAPI code base's fastapi and starlette imports to trioapi.",
    )
    parser.add_argument("paths", nargs="+", help="files or folders (searched for *.py)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="change the files in place")
    mode.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if anything is to be ported"
    )
    args = parser.parse_args(argv)
    stream = out if out is not None else sys.stdout
    changed = 0
    left_total = 0
    for path in python_files(args.paths):
        text = path.read_text(encoding="utf-8")
        try:
            result = port_source(text)
        except SyntaxError as error:
            print(
                f"{path}: skipped, not valid Python ({error.msg}, line {error.lineno})", file=stream
            )
            continue
        for item in result.left:
            left_total += 1
            print(f"{path}:{item.line}: left as it is: {item.module} ({item.why})", file=stream)
        if result.text == text:
            continue
        changed += 1
        if args.write:
            path.write_text(result.text, encoding="utf-8")
        elif not args.check:
            stream.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    result.text.splitlines(keepends=True),
                    f"a/{path}",
                    f"b/{path}",
                )
            )
    verb = "changed" if args.write else "to change"
    print(f"{changed} file(s) {verb}, {left_total} import(s) left as they are", file=stream)
    if args.check and (changed or left_total):
        return 1
    return 0
