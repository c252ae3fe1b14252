#!/usr/bin/env python3
"""FastAPI's own test suite, run against trioapi: the compatibility measure.

``nox -s fastapi-suite`` runs this script (``python scripts/fastapi_suite.py``
does too); it needs only the standard library and pip. In order:

1. Downloads the pinned FastAPI sdist (it ships ``tests/``, ``docs_src/`` and
   the pytest configuration in its ``pyproject.toml``) into the cache
   directory, ``.fastapi-suite/`` (git-ignored).
2. Baseline: a venv with the real ``fastapi`` and FastAPI's test dependencies
   runs those tests unchanged. A test counts only if it passes there. The
   result is cached per FastAPI and Python version; ``--rebaseline`` redoes it.
3. trioapi: a venv with trioapi installed from this repository (editable, so
   it runs the working tree) and the same test dependencies, without fastapi
   and without starlette, runs a copy of the tests in which file contents had
   one mechanical swap (``fastapi`` -> ``trioapi``, ``FastAPI`` -> ``TrioAPI``).
   Both venvs are kept and rebuilt only when their inputs change.
4. Compares, puts every counted test in a category (``CATEGORY_RULES``), and
   writes ``docs/compatibility.md`` (keeping its hand-maintained part after
   the marker line) and, in ``.fastapi-suite/results/``, ``trioapi-tests.json``
   (every counted test: category, outcome, reason), ``trioapi-failures.tsv``,
   ``trioapi-summary.json`` (per category, with the top reasons), the JUnit
   XML and pytest's log.

Iterating on one area: ``--category forms_files`` reruns only the counted
tests of that category (repeatable), ``-k EXPR`` goes to pytest, and so do
arguments after ``--``. Such a subset run writes ``subset-*`` results, prints
what changed since the last full run, and leaves the docs alone.
``--reasons N`` lists the N most common reasons for not passing, per
category; ``--reuse-run`` recomputes the report from the last full run
without running pytest; ``--list-categories`` shows the keys.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FASTAPI_VERSION = "0.165.0"
DEFAULT_CACHE = ROOT / ".fastapi-suite"
COMPAT_DOC = ROOT / "docs" / "compatibility.md"
MARKER = (
    "<!-- Everything below this line is maintained by hand: scripts/fastapi_suite.py keeps it. -->"
)

# The mechanical swap applied to the contents of every copied text file.
SWAPS: tuple[tuple[str, str], ...] = (("FastAPI", "TrioAPI"), ("fastapi", "trioapi"))

# What is copied from the sdist into a run's work directory. The sdist's docs/
# holds one image that two tutorial tests copy; pyproject.toml has the pytest
# configuration (strict markers, warnings as errors, a 20 s timeout).
COPIED = ("tests", "docs_src", "docs", "pyproject.toml")

# Test modules left out of both runs: they test FastAPI's repository tooling
# (its scripts/ package is not part of the framework), not the framework.
EXCLUDED_MODULES: dict[str, str] = {
    "tests/test_prepare_release.py": "tests FastAPI's release script (its scripts/ package)",
    "tests/test_translate.py": "tests FastAPI's docs-translation script (its scripts/ package)",
}

# FastAPI's CI installs the `all` extra next to the `tests` dependency group
# (forms need python-multipart, templates jinja2, settings pydantic-settings...),
# so both venvs get both. What is left out of them, and why:
LEFT_OUT: dict[str, str] = {
    "pytest-codspeed": "benchmark plugin; FastAPI's benchmark modules skip themselves "
    "unless pytest runs with --codspeed",
    "pytest-sugar": "changes only pytest's terminal output",
    "pytest-cov": "coverage reports for FastAPI's CI; no test uses it "
    "(coverage itself is kept: a CLI test runs `python -m coverage`)",
    "mypy": "type checker of FastAPI's CI; no test imports or runs it",
    "ty": "type checker of FastAPI's CI; no test imports or runs it",
    "ruff": "used by FastAPI's docs scripts (docs-tests group); no test imports or runs it",
    "python-slugify": "used by FastAPI's docs scripts (docs-tests group); no test imports it",
}
# Left out of the trioapi venv only.
LEFT_OUT_TRIOAPI: dict[str, str] = {
    "fastapi-cli": "FastAPI's own `fastapi` command (from the `all` extra); "
    "trioapi's command line is its own",
}
# Must not be in the trioapi venv: removed (and reported) if a dependency pulls one in.
FORBIDDEN = ("fastapi", "starlette")

TRIOAPI_TIMEOUT = 10.0  # per test; the slowest baseline tests take about 3 s
SESSION_TIMEOUT = 1800.0  # the whole trioapi pytest run; tests not reached count as not passing

# Categories, in report order: key -> title.
CATEGORIES: dict[str, str] = {
    "params": "Path, query, header and cookie parameters",
    "bodies": "Bodies",
    "dependencies": "Dependencies (incl. yield)",
    "overrides": "dependency_overrides",
    "routers": "APIRouter, bigger applications",
    "response_classes": "Response classes",
    "errors": "HTTPException, exception handlers, 422",
    "path_operations": "Path operations, status codes, Request",
    "background": "Background tasks",
    "response_model": "response_model, serialization",
    "param_models": "Parameter models",
    "forms_files": "Forms and files",
    "body_limits": "Request body limits",
    "openapi": "OpenAPI, docs UIs, schemas",
    "security": "Security",
    "middleware": "Middleware, CORS",
    "streaming": "Streaming, SSE",
    "websockets": "WebSockets",
    "mounts": "Mounts, static files, templates, sub-apps",
    "lifespan": "Lifespan, events",
    "telemetry": "OpenTelemetry integration",
    "other": "Other",
}

# How a counted test gets its category: the first rule that matches wins.
# "name" rules match the test function's name, "path" rules the module path
# (tests/test_tutorial/test_<docs section>/... follows FastAPI's docs sections).
CATEGORY_RULES: tuple[tuple[str, str, str], ...] = (
    ("openapi", "name", r"openapi"),
    ("body_limits", "path", r"request_body_limits|/test_form_limits\.py"),
    ("telemetry", "path", r"telemetry"),
    ("websockets", "path", r"websocket|/test_ws_"),
    ("streaming", "path", r"stream|/test_sse\.py|server_sent_events"),
    (
        "overrides",
        "path",
        r"dependency_overrides|testing_dependencies|dependency_security_overrides",
    ),
    (
        "openapi",
        "path",
        r"openapi|swagger|_docs|docs_ui|/test_metadata/|generate_clients|generate_unique_id"
        r"|schema|additional_responses|additional_response_extra|additional_properties"
        r"|callbacks|webhooks|/test_param_include_in_schema\.py|/test_duplicate_models"
        r"|get_model_definitions|/test_get_request_body\.py|/test_deprecated_responses\.py",
    ),
    ("security", "path", r"security|authentication_error"),
    ("background", "path", r"background_tasks"),
    ("lifespan", "path", r"/test_events/|router_events|lifespan"),
    ("middleware", "path", r"middleware|/test_cors/"),
    (
        "mounts",
        "path",
        r"static_files|templates|sub_applications|/test_wsgi/|graphql|/test_frontend\.py"
        r"|behind_a_proxy",
    ),
    ("forms_files", "path", r"form|file|upload|multipart|/test_datastructures\.py"),
    (
        "param_models",
        "path",
        r"param_models|_optional_models|parameter_models|model_extra_params|param_model_by_alias",
    ),
    (
        "response_classes",
        "path",
        r"custom_response|response_class|response_directly|response_cookies|response_headers"
        r"|/test_dump_json_fast_path\.py",
    ),
    (
        "dependencies",
        "path",
        r"depend|async_dependency_cleanup|/test_concurrency\.py|param_in_path_and_dependency",
    ),
    (
        "errors",
        "path",
        r"handling_errors|exception|error|/test_multi_query_errors",
    ),
    (
        "routers",
        "path",
        r"router|bigger_applications|include_route|modules_same_name|custom_request_and_route"
        r"|route_handler_wrapping|custom_route_class|/test_extra_routes\.py|/test_route_scope\.py",
    ),
    (
        "response_model",
        "path",
        r"response_model|serializ|extra_models|encoder|response_by_alias|skip_defaults"
        r"|validate_response|computed_fields|filter_pydantic_sub_model|read_with_orm_mode"
        r"|return_none|sql_databases",
    ),
    (
        "bodies",
        "path",
        r"/test_body|/test_request_params/test_body/|union_body|union_inherited_body"
        r"|request_body_parameters_media_type|put_no_body|regex_deprecated_body|strict_content_type"
        r"|extra_data_types|dataclasses|json_base64_bytes|/test_tuples\.py|/test_arbitrary_types\.py"
        r"|allow_inf_nan|/test_inherited_custom_class\.py",
    ),
    (
        "params",
        "path",
        r"path_params|query_params|header_params|cookie_params|/test_request_params/"
        r"|/test_path\.py|/test_query\.py|alias_choices|invalid_path_param|invalid_sequence_param"
        r"|ambiguous_params|/test_annotated\.py|/test_param_class\.py|params_repr"
        r"|parameter_extraction|infer_param_optionality|enforce_once_required_parameter"
        r"|repeated_parameter_alias|repeated_cookie_headers|required_noneable"
        r"|regex_deprecated_params|urlconvertors|nested_annotated_in_sequence|/test_json_type\.py",
    ),
    (
        "path_operations",
        "path",
        r"first_steps|path_operation|status_code|using_request_directly|/test_application\.py"
        r"|callable_endpoint|http_connection_injection|response_code_no_body"
        r"|response_set_response_code_empty|operations_signatures|stringified_annotation"
        r"|wrapped_method_forward_reference|/test_typing_python39\.py",
    ),
)


# ---------------------------------------------------------------------------
# Small helpers


def log(message: str) -> None:
    print(f"[fastapi-suite] {message}", flush=True)


def swap(text: str) -> str:
    for old, new in SWAPS:
        text = text.replace(old, new)
    return text


def normalise_name(requirement: str) -> str:
    """The distribution name of a requirement string, normalised (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def run(
    cmd: Sequence[str | Path],
    *,
    log_file: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``log_file`` its output goes there, else it is captured."""
    args = [str(c) for c in cmd]
    if log_file is None:
        result = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a", encoding="utf-8") as out:
            out.write(f"\n$ {' '.join(args)}\n")
            out.flush()
            result = subprocess.run(
                args,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
    if check and result.returncode != 0:
        detail = result.stderr if log_file is None else tail(log_file, 30)
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(args)}\n{detail}")
    return result


def tail(path: Path, lines: int) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


class Timer:
    """Records how long each phase took."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def phase(self, name: str) -> _Phase:
        return _Phase(self, name)


class _Phase:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        log(f"{self.name}...")
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.start
        self.timer.phases[self.name] = round(elapsed, 1)
        log(f"{self.name}: {elapsed:.1f} s")


# ---------------------------------------------------------------------------
# The sdist and its dependency lists


PIP_DOWNLOAD = ("-m", "pip", "download", "--no-deps", "--no-binary", ":all:")


def fetch_sdist(cache: Path, version: str, python: str) -> Path:
    """Download and unpack the FastAPI sdist once; return the unpacked directory."""
    sdist_dir = cache / "sdist"
    source = sdist_dir / f"fastapi-{version}"
    if (source / "pyproject.toml").exists():
        return source
    sdist_dir.mkdir(parents=True, exist_ok=True)
    tarball = sdist_dir / f"fastapi-{version}.tar.gz"
    if not tarball.exists():
        run(
            [python, *PIP_DOWNLOAD, f"fastapi=={version}", "-d", sdist_dir],
            log_file=cache / "logs" / "download.log",
        )
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(sdist_dir, filter="data")
        else:  # Python < 3.11.4; the archive comes from the package registry
            archive.extractall(sdist_dir)
    if not (source / "tests").is_dir():
        raise SystemExit(f"the sdist {tarball.name} has no tests/ directory")
    return source


def dependency_group(pyproject: dict[str, Any], name: str) -> list[str]:
    """A PEP 735 dependency group with its ``include-group`` entries resolved."""
    groups = pyproject.get("dependency-groups", {})
    requirements: list[str] = []
    for entry in groups[name]:
        if isinstance(entry, dict):
            requirements += dependency_group(pyproject, entry["include-group"])
        else:
            requirements.append(entry)
    return requirements


@dataclass
class Dependencies:
    baseline: list[str]
    trioapi: list[str]
    left_out: dict[str, str]


def dependencies(source: Path, version: str) -> Dependencies:
    pyproject = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    tests = dependency_group(pyproject, "tests")
    extra_all = pyproject["project"]["optional-dependencies"]["all"]
    wanted: list[str] = []
    for requirement in (r.strip() for r in [*extra_all, *tests]):
        if normalise_name(requirement) not in LEFT_OUT and requirement not in wanted:
            wanted.append(requirement)
    baseline = [f"fastapi[all]=={version}", *wanted]
    not_for_trioapi = {*LEFT_OUT_TRIOAPI, *FORBIDDEN}
    trioapi = [r for r in wanted if normalise_name(r) not in not_for_trioapi]
    trioapi_only = {name: f"(trioapi venv only) {why}" for name, why in LEFT_OUT_TRIOAPI.items()}
    return Dependencies(baseline, trioapi, {**LEFT_OUT, **trioapi_only})


# ---------------------------------------------------------------------------
# Virtual environments


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(
    venv: Path,
    python: str,
    install: list[list[str]],
    stamp_data: str,
    log_file: Path,
    *,
    reinstall: bool,
) -> bool:
    """Create ``venv`` and run the pip installs, unless an identical one exists.

    Returns whether it was (re)built.
    """
    stamp = venv / ".fastapi-suite-stamp"
    digest = hashlib.sha256(stamp_data.encode()).hexdigest()
    if not reinstall and stamp.exists() and stamp.read_text() == digest:
        return False
    if venv.exists():
        shutil.rmtree(venv)
    run([python, "-m", "venv", venv], log_file=log_file)
    py = venv_python(venv)
    for args in install:
        run([py, "-m", "pip", "install", *args], log_file=log_file)
    stamp.write_text(digest)
    return True


def pip_freeze(py: Path) -> list[str]:
    out = run([py, "-m", "pip", "freeze", "--all"]).stdout
    return [line for line in out.splitlines() if line and not line.startswith(("-e", "#"))]


def installed_version(py: Path, name: str) -> str | None:
    result = run([py, "-m", "pip", "show", name], check=False)
    if result.returncode != 0:
        return None
    match = re.search(r"^Version: (.+)$", result.stdout, re.MULTILINE)
    return match.group(1).strip() if match else "?"


def remove_forbidden(py: Path, log_file: Path) -> list[str]:
    """Uninstall fastapi/starlette if a test dependency pulled them in; say who did."""
    notes = []
    for name in FORBIDDEN:
        result = run([py, "-m", "pip", "show", name], check=False)
        if result.returncode != 0:
            continue
        match = re.search(r"^Required-by: (.*)$", result.stdout, re.MULTILINE)
        by = match.group(1).strip() if match and match.group(1).strip() else "nothing"
        run([py, "-m", "pip", "uninstall", "--yes", name], log_file=log_file)
        notes.append(f"{name} was pulled in (required by: {by}) and uninstalled")
    return notes


# ---------------------------------------------------------------------------
# Work directories and pytest


def copy_sources(source: Path, work: Path, *, swapped: bool) -> None:
    """Copy the sdist's tests into ``work``; with ``swapped`` apply SWAPS to text files."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in COPIED:
        origin = source / name
        if not origin.exists():
            continue
        files = (
            [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
        )
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            target = work / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            if swapped:
                with contextlib.suppress(UnicodeDecodeError):  # binary: copied unchanged
                    data = swap(data.decode("utf-8")).encode("utf-8")
            target.write_bytes(data)


def pytest_env(venv: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


SELECT_PLUGIN = "fastapi_suite_select"
SELECT_ENV = "SUITE_SELECTION_FILE"
SELECT_PLUGIN_SOURCE = f"""\
# Written by scripts/fastapi_suite.py: keeps only the tests listed in ${SELECT_ENV}.
import os


def pytest_collection_modifyitems(config, items):
    with open(os.environ["{SELECT_ENV}"], encoding="utf-8") as f:
        wanted = set(f.read().splitlines())
    dropped = [item for item in items if item.nodeid not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.nodeid in wanted]
"""


def run_pytest(
    venv: Path,
    work: Path,
    junit: Path,
    log_file: Path,
    *,
    workers: str,
    timeout: float | None,
    session_timeout: float | None,
    selection: list[str] | None,
    keyword: str | None,
    extra: list[str],
) -> str:
    """Run pytest in ``work``; return its closing summary line."""
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)
    args: list[str | Path] = [venv_python(venv), "-m", "pytest", "-p", "no:cacheprovider"]
    args += ["-q", "--continue-on-collection-errors", f"--junitxml={junit}"]
    args += ["-o", "junit_family=xunit2", "-o", "console_output_style=classic"]
    for module in EXCLUDED_MODULES:
        args += ["--ignore", module]
    if workers not in {"0", ""}:
        args += ["-n", workers]
    if timeout is not None:
        args += ["--timeout", str(timeout), "--timeout-method", "signal"]
    if session_timeout is not None:
        args += ["--session-timeout", str(session_timeout)]
    if keyword:
        args += ["-k", keyword]
    args += extra
    env = pytest_env(venv)
    if selection is None:
        args.append("tests")
    else:
        # pytest stops at the first node id whose module does not import, so it gets the
        # modules, and a small plugin keeps only the selected tests of them.
        plugin_dir = junit.parent / "plugin"
        plugin_dir.mkdir(exist_ok=True)
        (plugin_dir / f"{SELECT_PLUGIN}.py").write_text(SELECT_PLUGIN_SOURCE, encoding="utf-8")
        wanted = junit.with_suffix(".selection")
        wanted.write_text("\n".join(selection) + "\n", encoding="utf-8")
        env["PYTHONPATH"] = str(plugin_dir)
        env[SELECT_ENV] = str(wanted)
        args += ["-p", SELECT_PLUGIN, *sorted({split_id(t)[0] for t in selection})]
    # A last resort past pytest-timeout's own limits: stop pytest and its xdist workers.
    hard_limit = None if session_timeout is None else session_timeout + 600
    with log_file.open("w", encoding="utf-8") as out:
        out.write(f"$ {' '.join(map(str, args))}\n")
        out.flush()
        process = subprocess.Popen(
            [str(a) for a in args],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=hard_limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log(f"pytest ran past {hard_limit:.0f} s and was stopped; see {log_file}")
        except KeyboardInterrupt:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    lines = [ln for ln in tail(log_file, 5).splitlines() if ln.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


# ---------------------------------------------------------------------------
# JUnit XML -> outcomes

# "Type: message" as the first line of a failure's message (any class name) ...
MESSAGE_LINE = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s?(.*))?$")
# ... and in a traceback's "E   " lines, where only names that look like exceptions count.
TRACEBACK_LINE = re.compile(
    r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Warning|Exit|Failed|Interrupt|Group"
    r"|Cancelled|Timeout|Iteration))(?::\s?(.*))?$"
)


@dataclass
class Outcome:
    outcome: str  # passed, failed, error, skipped, xfailed, timeout, collection-error, not-run
    reason: str = ""


def first_exception_line(text: str) -> str:
    """``Type: first line of the message`` of the exception that a traceback text ends with."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    e_lines = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    for line in reversed(e_lines):  # the last one raised is the one that escaped
        match = TRACEBACK_LINE.match(line)
        if match:
            kind, message = match.group(1), (match.group(2) or "").strip()
            return f"{kind}: {message}" if message else kind
    for line in e_lines:
        if line.startswith("assert "):
            return f"AssertionError: {line}"
    return (e_lines or lines or [""])[0]


def failure_reason(message: str, text: str) -> str:
    """The reason of a failure from its JUnit ``message`` attribute, else its traceback."""
    line = message.strip().splitlines()[0].strip() if message.strip() else ""
    if line.startswith("assert "):
        return f"AssertionError: {line}"
    if line and MESSAGE_LINE.match(line):
        return line
    return first_exception_line(text) or line


def module_files(work: Path) -> set[str]:
    return {p.relative_to(work).as_posix() for p in (work / "tests").rglob("*.py")}


def node_id(classname: str, name: str, modules: set[str]) -> str:
    """pytest's node id for a JUnit ``classname`` (module path plus classes) and ``name``."""
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        path = "/".join(parts[:i]) + ".py"
        if path in modules:
            return "::".join([path, *parts[i:], name])
    return "::".join(["/".join(parts) + ".py", name])


def split_id(test_id: str) -> tuple[str, str]:
    path, _, rest = test_id.partition("::")
    return path, rest


def match_key(test_id: str) -> str:
    """The id under which a test is found in both runs: the swap applied past the path."""
    path, rest = split_id(test_id)
    return f"{path}::{swap(rest)}"


@dataclass
class RunResult:
    tests: dict[str, Outcome] = field(default_factory=dict)
    # Dotted module (or package) name -> outcome of a module that failed or skipped collection.
    modules: dict[str, Outcome] = field(default_factory=dict)


def parse_junit(junit: Path, modules: set[str]) -> RunResult:
    result = RunResult()
    if not junit.exists():
        return result
    for case in ET.parse(junit).getroot().iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        children = list(case)
        if not classname:  # a collection report for a whole module
            for child in children:
                if child.tag == "error":
                    reason = first_exception_line(child.text or "") or "collection failure"
                    result.modules[name] = Outcome("collection-error", reason)
                elif child.tag == "skipped":
                    result.modules[name] = Outcome(
                        "skipped", f"Skipped: {skip_message(child.text or '')}"
                    )
            continue
        test_id = node_id(classname, name, modules)
        result.tests[test_id] = case_outcome(children)
    return result


def skip_message(text: str) -> str:
    # A module-level skip's text is like "('path', 12, 'Skipped: reason')".
    match = re.search(r"Skipped: (.*?)['\"]\)?$", text.strip())
    return match.group(1) if match else text.strip()[:160]


def case_outcome(children: list[ET.Element]) -> Outcome:
    failures = [c for c in children if c.tag == "failure"]
    errors = [c for c in children if c.tag == "error"]
    skips = [c for c in children if c.tag == "skipped"]
    if failures:
        node = failures[0]
        reason = failure_reason(node.get("message", ""), node.text or "")
        if reason.startswith("Failed: Timeout"):
            return Outcome("timeout", reason)
        return Outcome("failed", reason)
    if errors:
        node = errors[0]
        message = node.get("message", "")
        match = re.match(r'failed on (\w+) with "(.*)"$', message, re.DOTALL)
        if match:
            when, inner = match.groups()
            reason = failure_reason(inner, node.text or "")
            kind = "timeout" if reason.startswith("Failed: Timeout") else "error"
            return Outcome(kind, f"{reason} (in {when})")
        return Outcome("error", failure_reason(message, node.text or ""))
    if skips:
        node = skips[0]
        if node.get("type") == "pytest.xfail":
            return Outcome("xfailed", f"XFail: {node.get('message', '')}")
        return Outcome("skipped", f"Skipped: {node.get('message', '')}")
    return Outcome("passed")


def module_outcome(test_id: str, run_result: RunResult) -> Outcome | None:
    """The collection outcome of the module (or an enclosing package) of ``test_id``."""
    dotted = split_id(test_id)[0].removesuffix(".py").replace("/", ".")
    for name, outcome in run_result.modules.items():
        if dotted == name or dotted.startswith(name + "."):
            return outcome
    return None


# ---------------------------------------------------------------------------
# Categories and the comparison


def categorise(test_id: str) -> str:
    path, rest = split_id(test_id)
    function = rest.split("::")[-1].split("[")[0]
    for category, where, pattern in CATEGORY_RULES:
        subject = function if where == "name" else "/" + path
        if re.search(pattern, subject):
            return category
    return "other"


@dataclass
class Record:
    id: str
    category: str
    outcome: str
    reason: str


def compare(
    baseline_passing: Iterable[str],
    run_result: RunResult,
    *,
    partial: bool = False,
    keyword: str | None = None,
) -> list[Record]:
    """The trioapi outcome of each baseline-passing test.

    In a ``partial`` run (``-k`` or pytest arguments), a test missing from the
    report was deselected; the tests of a module that did not import count only
    if they match ``keyword`` (as ``keyword_matches`` approximates pytest's -k).
    """
    records = []
    for test_id in sorted(baseline_passing):
        key = match_key(test_id)
        outcome = run_result.tests.get(key)
        if outcome is None:
            outcome = module_outcome(key, run_result)
            if outcome is not None and keyword and not keyword_matches(keyword, key):
                continue
        if outcome is None:
            if partial:
                continue
            outcome = Outcome("not-run", "not in the trioapi run's report")
        records.append(Record(test_id, categorise(test_id), outcome.outcome, outcome.reason))
    return records


def keyword_matches(expression: str, test_id: str) -> bool:
    """pytest's ``-k`` on a node id: and/or/not/parentheses over case-insensitive substrings
    of the names on the way to the test (directories, module file, classes, test with its
    parameters). Markers are not known here."""
    path, rest = split_id(test_id)
    names = [n.lower() for n in [*path.split("/"), *rest.split("::")]]
    tokens: list[str] = re.findall(r"\(|\)|[^\s()]+", expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def any_of() -> bool:
        value = all_of()
        while peek() == "or":
            take()
            value = all_of() or value
        return value

    def all_of() -> bool:
        value = negation()
        while peek() == "and":
            take()
            value = negation() and value
        return value

    def negation() -> bool:
        token = take() if peek() is not None else ""
        if token == "not":
            return not negation()
        if token == "(":
            value = any_of()
            if peek() == ")":
                take()
            return value
        return any(token.lower() in name for name in names)

    return any_of()


def clean_reason(reason: str, paths: Iterable[Path]) -> str:
    """One line, without this machine's paths or object addresses, at most 200 characters."""
    for path in sorted({str(p) for p in paths}, key=len, reverse=True):
        reason = reason.replace(path + "/", "").replace(path, ".")
    reason = reason.replace(tempfile.gettempdir() + "/", "<tmp>/")
    reason = re.sub(r" at 0x[0-9a-f]+", "", reason)
    reason = " ".join(reason.split())
    return reason if len(reason) <= 200 else reason[:197] + "..."


def starlette_modules(work: Path) -> set[str]:
    """The test modules (``tests/...py``) that import starlette themselves.

    They cannot pass where Starlette is not installed, whatever trioapi
    does; the report shows each category with and without them.
    """
    found: set[str] = set()
    tests = work / "tests"
    for path in tests.rglob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if re.search(r"^\s*(from|import)\s+starlette\b", text, re.MULTILINE):
            found.add(path.relative_to(work).as_posix())
    return found


def summarise(records: list[Record], starlette: set[str]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for key, title in CATEGORIES.items():
        rows = [r for r in records if r.category == key]
        passing = sum(r.outcome == "passed" for r in rows)
        reasons = collections.Counter(r.reason for r in rows if r.outcome != "passed")
        own = [r for r in rows if r.id.split("::", 1)[0] not in starlette]
        own_passing = sum(r.outcome == "passed" for r in own)
        table[key] = {
            "title": title,
            "baseline_passing": len(rows),
            "trioapi_passing": passing,
            "percent": percent(passing, len(rows)),
            "without_starlette": len(own),
            "without_starlette_passing": own_passing,
            "without_starlette_percent": percent(own_passing, len(own)),
            "top_reasons": [{"tests": n, "reason": why} for why, n in reasons.most_common(5)],
        }
    return table


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


# ---------------------------------------------------------------------------
# Reports


def git_commit() -> str:
    try:
        head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--", "trioapi"]).stdout.strip()
    except (SystemExit, OSError):
        return "unknown"
    return f"{head} (with uncommitted changes under trioapi/)" if dirty else head


def write_doc(summary: dict[str, Any], path: Path) -> None:
    """Rewrite ``path`` up to MARKER; keep what follows it."""
    kept = DEFAULT_KNOWN_DIFFERENCES
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if MARKER in old:
            kept = old.split(MARKER, 1)[1].lstrip("\n")
    path.write_text(render_doc(summary) + "\n" + MARKER + "\n\n" + kept, encoding="utf-8")


DEFAULT_KNOWN_DIFFERENCES = """## Known differences

Deliberate differences from FastAPI, and failing tests we do not intend to
fix, with the reason. Maintained by hand; the script keeps this section.

- (none recorded yet)
"""


def wrap(text: str, indent: str = "") -> str:
    """One Markdown paragraph or list item, wrapped at 78 columns."""
    bullet = re.match(r"\s*- ", text)
    lead = bullet.group(0) if bullet else indent
    body = " ".join(text[len(lead) :].split())
    # Code spans are not broken across lines: their spaces are held back while wrapping.
    body = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), body)
    wrapped = textwrap.fill(
        body,
        width=78,
        initial_indent=lead,
        subsequent_indent=" " * len(lead),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapped.replace("\0", " ")


def render_doc(s: dict[str, Any]) -> str:
    meta, totals = s["meta"], s["totals"]
    version = meta["fastapi_version"]
    removed = "; ".join(meta["removed_from_trioapi_venv"]) or (
        "neither was pulled in by a test dependency"
    )
    pinned = (
        "at the versions the baseline resolved"
        if meta["trioapi_venv_pinned"]
        else "(not at the baseline's versions: installing those failed)"
    )
    xdist = f"{meta['workers']} pytest-xdist workers" if meta["workers"] != "0" else "no xdist"
    seconds = {**meta["baseline_seconds"], **meta["seconds"]}
    order = ["sdist", "baseline: venv", "baseline: pytest", "trioapi: venv", "trioapi: pytest"]
    seconds = dict(sorted(seconds.items(), key=lambda kv: order.index(kv[0])))
    timing = ", ".join(f"{phase} {value:.0f} s" for phase, value in seconds.items())
    outcomes = ", ".join(f"{n} {kind}" for kind, n in sorted(totals["outcomes"].items()))
    measured = [
        f"- **The tests**: FastAPI {version}'s `tests/` and `docs_src/`, from its sdist, with the "
        "pytest configuration of its `pyproject.toml` (strict markers, warnings as errors). "
        f"Python {meta['python']}.",
        f"- **Baseline**: a venv with the real `fastapi=={version}` (starlette "
        f"{meta['baseline_starlette']}, pydantic {meta['baseline_pydantic']}) and FastAPI's test "
        "dependencies (its `tests` dependency group, plus the `all` extra that its CI installs "
        "too) runs those tests unchanged. **A test counts only if it passes there**: "
        f"{totals['baseline_passing']} of the {totals['baseline_collected']} test results.",
        "- **trioapi**: a venv with trioapi installed from this repository "
        f"(`-e .[pydantic,testing]`, pydantic {meta['trioapi_pydantic']}) and the same test "
        f"dependencies, {pinned}, without fastapi and without starlette ({removed}). The tests "
        "are copied and one mechanical swap is applied to every file's contents: `fastapi` -> "
        "`trioapi`, `FastAPI` -> `TrioAPI` (file names unchanged). pytest runs them with "
        f"{xdist} and a per-test timeout of {meta['timeout']:g} s.",
        "- **A counted test passes on trioapi or it does not**: a failure, an error, a skip, a "
        "timeout, or its module failing to import all count as not passing; a test that "
        "imports starlette directly fails, which is the honest answer. Test ids are matched "
        "after the same swap (some parametrize ids contain it). The last column leaves out the "
        "test modules that import starlette themselves (they cannot pass without it, whatever "
        "trioapi does), to show what is left to do in trioapi.",
        "- **Categories** come from the test's file and name (the table `CATEGORY_RULES` in the "
        "script; the first matching rule wins); `tests/test_tutorial/` follows the sections of "
        "FastAPI's docs. A test function whose name contains `openapi` is an OpenAPI test "
        "wherever it is.",
        "- Left out of the venvs:",
        *(f"  - `{name}`: {why}" for name, why in meta["left_out"].items()),
        "- Left out of both runs:",
        *(f"  - `{name}`: {why}" for name, why in EXCLUDED_MODULES.items()),
    ]
    rows = [
        table_row(
            c["title"],
            f"`{key}`",
            c["baseline_passing"],
            c["trioapi_passing"],
            c["percent"],
            own=(c.get("without_starlette", 0), c.get("without_starlette_passing", 0)),
        )
        for key, c in s["categories"].items()
        if c["baseline_passing"]
    ]
    own_totals = s.get("without_starlette", {})
    rows.append(
        table_row(
            "**total**",
            "",
            totals["baseline_passing"],
            totals["trioapi_passing"],
            totals["percent"],
            own=(own_totals.get("counted", 0), own_totals.get("passing", 0)),
            bold=True,
        )
    )
    reasons = [f"| {r['tests']} | {md_cell(r['reason'])} |" for r in s["top_reasons"][:15]]
    parts = [
        "# Compatibility with FastAPI's test suite",
        wrap(
            "How much of FastAPI's own test suite passes on trioapi. Generated by "
            f"`nox -s fastapi-suite` (`scripts/fastapi_suite.py`) on {meta['date']}, for trioapi "
            f"commit {meta['trioapi_commit']}; do not edit above the marker line."
        ),
        "## What is measured",
        "\n".join(wrap(item) for item in measured),
        "## Results",
        "\n".join(
            [
                "| category | key | passing on FastAPI | passing on trioapi | % "
                "| % without Starlette-importing modules |",
                "|---|---|---:|---:|---:|---:|",
                *rows,
            ]
        ),
        wrap(
            f"Outcomes on trioapi of the counted tests: {outcomes}. {totals['other']} counted "
            f'tests fall into "Other". Phase times (the baseline\'s from its run on '
            f"{meta['baseline_date']}): {timing}."
        ),
        "### Most common reasons for not passing",
        "\n".join(
            [
                "| tests | reason (exception type and first line of its message) |",
                "|---:|---|",
                *reasons,
            ]
        ),
        wrap(
            "Rerun one area while working on it: `nox -s fastapi-suite -- --category KEY` "
            "(keys: `nox -s fastapi-suite -- --list-categories`), or `-- -k EXPR`; "
            "`-- --reasons 5` lists the top reasons per category. Per-test outcomes and reasons "
            "are in `.fastapi-suite/results/` (git-ignored)."
        ),
    ]
    return "\n\n".join(parts) + "\n"


def table_row(
    title: str,
    key: str,
    base: int,
    trio: int,
    pct: float,
    *,
    own: tuple[int, int] = (0, 0),
    bold: bool = False,
) -> str:
    counted, passing = own
    without = f"{percent(passing, counted):.1f} % of {counted}" if counted else "—"
    numbers = [str(base), str(trio), f"{pct:.1f} %", without]
    if bold:
        numbers = [f"**{n}**" for n in numbers]
    return "| " + " | ".join([title, key, *numbers]) + " |"


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def print_summary(s: dict[str, Any], reasons_per_category: int) -> None:
    width = 2 + max(len(f"{c['title']} [{key}]") for key, c in s["categories"].items())
    print()
    print(f"{'category [key]':<{width}} {'FastAPI':>8} {'trioapi':>8} {'%':>7}")
    for key, c in s["categories"].items():
        if not c["baseline_passing"]:
            continue
        title = f"{c['title']} [{key}]"
        print(f"{title:<{width}} {c['baseline_passing']:>8} {c['trioapi_passing']:>8}", end="")
        print(f" {c['percent']:>6.1f}%")
        for r in c["top_reasons"][:reasons_per_category]:
            print(f"    {r['tests']:>5}  {r['reason'][:110]}")
    t = s["totals"]
    print(f"{'total':<{width}} {t['baseline_passing']:>8} {t['trioapi_passing']:>8}", end="")
    print(f" {t['percent']:>6.1f}%")
    print()
    if not reasons_per_category:
        print("most common reasons for not passing:")
        for r in s["top_reasons"][:5]:
            print(f"  {r['tests']:>5}  {r['reason'][:110]}")
        print()


def build_summary(
    records: list[Record],
    meta: dict[str, Any],
    paths: Iterable[Path],
    starlette: set[str] | None = None,
) -> dict[str, Any]:
    paths = list(paths)
    for record in records:
        record.reason = clean_reason(record.reason, paths)
    passing = sum(r.outcome == "passed" for r in records)
    reasons = collections.Counter(r.reason for r in records if r.outcome != "passed")
    own = [r for r in records if r.id.split("::", 1)[0] not in (starlette or set())]
    own_passing = sum(r.outcome == "passed" for r in own)
    return {
        "meta": meta,
        "without_starlette": {
            "counted": len(own),
            "passing": own_passing,
            "percent": percent(own_passing, len(own)),
        },
        "totals": {
            "baseline_collected": meta.get("baseline_collected", 0),
            "baseline_passing": len(records),
            "trioapi_passing": passing,
            "percent": percent(passing, len(records)),
            "outcomes": dict(collections.Counter(r.outcome for r in records)),
            "other": sum(r.category == "other" for r in records),
        },
        "categories": summarise(records, starlette or set()),
        "top_reasons": [{"tests": n, "reason": why} for why, n in reasons.most_common(25)],
    }


def write_results(results: Path, name: str, summary: dict[str, Any], records: list[Record]) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results / f"{name}-tests.json").write_text(
        json.dumps([asdict(r) for r in records], indent=1) + "\n"
    )
    with (results / f"{name}-failures.tsv").open("w", encoding="utf-8") as out:
        out.write("id\tcategory\toutcome\treason\n")
        for r in records:
            if r.outcome != "passed":
                out.write(f"{r.id}\t{r.category}\t{r.outcome}\t{r.reason}\n")


def print_changes(records: list[Record], previous_file: Path) -> None:
    if not previous_file.exists():
        return
    before = {r["id"]: r["outcome"] for r in json.loads(previous_file.read_text())}
    fixed = [r.id for r in records if r.outcome == "passed" and before.get(r.id) != "passed"]
    broken = [r.id for r in records if r.outcome != "passed" and before.get(r.id) == "passed"]
    log(f"since the last full run: {len(fixed)} now pass, {len(broken)} no longer pass")
    for test_id in broken[:20]:
        print(f"    no longer passes: {test_id}")


# ---------------------------------------------------------------------------
# The phases


@dataclass
class Baseline:
    passing: list[str]
    collected: int
    freeze: list[str]
    python: str
    date: str
    seconds: dict[str, float]
    summary_line: str


def baseline_dir(cache: Path, version: str, python_version: str) -> Path:
    return cache / "baseline" / f"fastapi-{version}-py{python_version}"


def python_version(python: str) -> str:
    out = run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]).stdout
    return out.strip()


def load_baseline(directory: Path) -> Baseline | None:
    data_file = directory / "baseline.json"
    if not data_file.exists():
        return None
    return Baseline(**json.loads(data_file.read_text()))


def make_baseline(
    args: argparse.Namespace, cache: Path, source: Path, deps: Dependencies, timer: Timer
) -> Baseline:
    pyver = python_version(args.python)
    directory = baseline_dir(cache, FASTAPI_VERSION, pyver.rsplit(".", 1)[0])
    venv = cache / "venvs" / "baseline"
    work = cache / "work" / "baseline"
    with timer.phase("baseline: venv"):
        ensure_venv(
            venv,
            args.python,
            [deps.baseline],
            json.dumps([pyver, deps.baseline]),
            cache / "logs" / "baseline-venv.log",
            reinstall=args.reinstall,
        )
    with timer.phase("baseline: pytest"):
        copy_sources(source, work, swapped=False)
        junit = directory / "junit.xml"
        line = run_pytest(
            venv,
            work,
            junit,
            directory / "pytest.log",
            workers=args.workers,
            timeout=None,  # FastAPI's own configuration: 20 s
            session_timeout=None,
            selection=None,
            keyword=None,
            extra=[],
        )
        log(f"baseline pytest: {line}")
    parsed = parse_junit(junit, module_files(work))
    if not parsed.tests:
        raise SystemExit(f"the baseline run reported no tests; see {directory / 'pytest.log'}")
    baseline = Baseline(
        passing=sorted(t for t, o in parsed.tests.items() if o.outcome == "passed"),
        collected=len(parsed.tests),
        freeze=pip_freeze(venv_python(venv)),
        python=pyver,
        date=datetime.date.today().isoformat(),
        seconds={k: v for k, v in timer.phases.items() if k.startswith("baseline")},
        summary_line=line,
    )
    (directory / "baseline.json").write_text(json.dumps(asdict(baseline), indent=1) + "\n")
    return baseline


TRIOAPI_VENV_INFO = ".fastapi-suite-info.json"


def make_trioapi_venv(
    args: argparse.Namespace, cache: Path, deps: Dependencies, baseline: Baseline, timer: Timer
) -> tuple[Path, dict[str, Any]]:
    """The trioapi venv (rebuilt only when its inputs change) and what was done to it."""
    venv = cache / "venvs" / "trioapi"
    log_file = cache / "logs" / "trioapi-venv.log"
    constraints = cache / "venvs" / "trioapi-constraints.txt"
    skip = {*FORBIDDEN, "trioapi", *LEFT_OUT_TRIOAPI}
    pins = [line for line in baseline.freeze if "==" in line and normalise_name(line) not in skip]
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_text("\n".join(pins) + "\n")
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    editable = f"{ROOT}[pydantic,testing]"
    stamp = json.dumps([baseline.python, deps.trioapi, pins, project])
    with timer.phase("trioapi: venv"):
        pinned = True
        try:
            built = ensure_venv(
                venv,
                args.python,
                [["-e", editable, *deps.trioapi, "-c", str(constraints)]],
                stamp,
                log_file,
                reinstall=args.reinstall,
            )
        except SystemExit:
            log("installing at the baseline's versions failed; retrying without those pins")
            pinned, built = False, True
            ensure_venv(
                venv,
                args.python,
                [["-e", editable, *deps.trioapi]],
                stamp,
                log_file,
                reinstall=True,
            )
        info_file = venv / TRIOAPI_VENV_INFO
        if built or not info_file.exists():
            info = {"pinned": pinned, "removed": remove_forbidden(venv_python(venv), log_file)}
            info_file.write_text(json.dumps(info) + "\n")
        info = json.loads(info_file.read_text())
        still = [n for n in FORBIDDEN if installed_version(venv_python(venv), n) is not None]
        if still:
            raise SystemExit(f"the trioapi venv still has {still}: remove them or --reinstall")
    for note in info["removed"]:
        log(f"trioapi venv: {note}")
    return venv, info


def parse_cli(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arguments after -- go to pytest (trioapi run).",
    )
    parser.add_argument("--rebaseline", action="store_true", help="redo the cached baseline run")
    parser.add_argument(
        "--reinstall", action="store_true", help="rebuild the venvs even when they look current"
    )
    parser.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="KEY",
        help="rerun only the counted tests of this category (repeatable); docs stay untouched",
    )
    parser.add_argument("-k", dest="keyword", help="passed to pytest -k (a subset run)")
    parser.add_argument(
        "--reasons",
        type=int,
        default=0,
        metavar="N",
        help="print the N most common reasons for not passing, per category",
    )
    parser.add_argument(
        "--reuse-run",
        action="store_true",
        help="recompute the report from the last full run's JUnit XML, without running pytest",
    )
    parser.add_argument("--list-categories", action="store_true", help="print category keys")
    parser.add_argument(
        "-n", "--workers", default="2", help="pytest-xdist workers (0: no xdist; default 2)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TRIOAPI_TIMEOUT,
        help=f"per-test timeout in seconds on trioapi (default {TRIOAPI_TIMEOUT:g})",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=SESSION_TIMEOUT,
        help=f"limit for the whole trioapi pytest run (default {SESSION_TIMEOUT:g} s)",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the venvs (default: this one)"
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="cache directory")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/compatibility.md"
    )
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="after the swap, also run `python -m trioapi migrate --write` on the tests (their "
        "starlette imports); results as 'migrated-*', docs untouched",
    )
    return parser.parse_args(argv), extra


def main(argv: Sequence[str]) -> int:
    args, extra = parse_cli(argv)
    if args.list_categories:
        for key, title in CATEGORIES.items():
            print(f"{key:<18} {title}")
        return 0
    unknown = [c for c in args.category if c not in CATEGORIES]
    if unknown:
        raise SystemExit(f"unknown category {unknown}; see --list-categories")
    cache: Path = args.cache_dir.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    # Runs share the venvs and work directories: one at a time per cache directory.
    with (cache / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another run holds this cache directory; waiting for it to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return run_suite(args, extra, cache)


def run_suite(args: argparse.Namespace, extra: list[str], cache: Path) -> int:
    subset = bool(args.category or args.keyword or extra)
    results = cache / "results"
    timer = Timer()
    started = time.monotonic()

    with timer.phase("sdist"):
        source = fetch_sdist(cache, FASTAPI_VERSION, args.python)
    deps = dependencies(source, FASTAPI_VERSION)

    pyver = python_version(args.python)
    directory = baseline_dir(cache, FASTAPI_VERSION, pyver.rsplit(".", 1)[0])
    baseline = None if args.rebaseline else load_baseline(directory)
    if baseline is None:
        baseline = make_baseline(args, cache, source, deps, timer)
    else:
        log(f"baseline: cached from {baseline.date} ({directory.name}); --rebaseline redoes it")
    log(f"baseline: {len(baseline.passing)} of {baseline.collected} test results pass")

    work = cache / "work" / ("migrated" if args.migrate else "trioapi")
    name = "subset" if subset else "trioapi"
    if args.migrate:
        name = "migrated-subset" if subset else "migrated"
        args.no_docs = True  # the document reports the swap alone
    junit = results / f"{name}-junit.xml"
    venv = cache / "venvs" / "trioapi"
    if args.reuse_run:
        if subset:
            raise SystemExit("--reuse-run recomputes a full run; it takes no subset options")
        info_file = venv / TRIOAPI_VENV_INFO
        if not all(f.exists() for f in (junit, info_file, results / "trioapi-summary.json")):
            raise SystemExit("--reuse-run needs a previous full run")
        info = json.loads(info_file.read_text())
        log(f"reusing {junit}")
    else:
        venv, info = make_trioapi_venv(args, cache, deps, baseline, timer)
        selection = None
        if args.category:
            selection = sorted(
                match_key(t) for t in baseline.passing if categorise(t) in args.category
            )
            log(f"{len(selection)} counted tests in {', '.join(args.category)}")
        with timer.phase("trioapi: pytest"):
            copy_sources(source, work, swapped=True)
            if args.migrate:
                # What a user would run on their code base: starlette imports
                # become trioapi's where trioapi has the names.
                done = subprocess.run(
                    [
                        str(venv_python(venv)),
                        "-m",
                        "trioapi",
                        "migrate",
                        "--write",
                        "tests",
                        "docs_src",
                    ],
                    cwd=work,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                log(f"migrate: {done.stdout.strip().splitlines()[-1]}")
            line = run_pytest(
                venv,
                work,
                junit,
                results / f"{name}-pytest.log",
                workers=args.workers,
                timeout=args.timeout,
                session_timeout=args.session_timeout,
                selection=selection,
                keyword=args.keyword,
                extra=extra,
            )
            log(f"trioapi pytest: {line}")

    parsed = parse_junit(junit, module_files(work))
    counted = [t for t in baseline.passing if not args.category or categorise(t) in args.category]
    records = compare(counted, parsed, partial=bool(args.keyword or extra), keyword=args.keyword)
    meta = {
        "date": datetime.date.today().isoformat(),
        "trioapi_commit": git_commit(),
        "fastapi_version": FASTAPI_VERSION,
        "python": baseline.python,
        "baseline_starlette": freeze_version(baseline.freeze, "starlette"),
        "baseline_pydantic": freeze_version(baseline.freeze, "pydantic"),
        "baseline_collected": baseline.collected,
        "baseline_seconds": baseline.seconds,
        "baseline_date": baseline.date,
        "timeout": args.timeout,
        "workers": args.workers,
        "left_out": deps.left_out,
        "removed_from_trioapi_venv": info["removed"],
        "trioapi_venv_pinned": info["pinned"],
        "trioapi_pydantic": installed_version(venv_python(venv), "pydantic") or "none",
        "subset": {"category": args.category, "k": args.keyword, "pytest_args": extra}
        if subset
        else None,
        "seconds": timer.phases,
    }
    if args.reuse_run:  # what describes the run itself comes from that run
        previous_meta = json.loads((results / "trioapi-summary.json").read_text())["meta"]
        for key in ("date", "trioapi_commit", "timeout", "workers", "trioapi_pydantic", "seconds"):
            meta[key] = previous_meta[key]
    machine_paths = [work, cache, ROOT, Path(sys.base_prefix), Path(sys.prefix)]
    summary = build_summary(records, meta, machine_paths, starlette_modules(work))
    previous = results / "trioapi-tests.json"
    if subset:
        print_changes(records, previous)
    write_results(results, name, summary, records)
    if not subset and not args.no_docs:
        write_doc(summary, COMPAT_DOC)
        log(f"wrote {COMPAT_DOC.relative_to(ROOT)}")
    print_summary(summary, args.reasons)
    log(
        f"{summary['totals']['other']} counted tests are in 'other'; "
        f"results in {results}; total {time.monotonic() - started:.0f} s"
    )
    for phase, seconds in timer.phases.items():
        log(f"  {phase}: {seconds:.1f} s")
    return 0


def freeze_version(freeze: list[str], name: str) -> str:
    for line in freeze:
        if "==" in line and normalise_name(line) == name:
            return line.split("==", 1)[1]
    return "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
