"""Development sessions: ``nox`` runs tests, lint and typing, as CI does.

- ``nox -s tests``: the whole pytest suite (end-to-end tests included) with
  branch coverage; it installs Debian's ``chromium`` for the browser tests of
  ``/docs`` and ``/redoc`` when it runs as root and the package is missing
  (they skip without it), and Debian's ``redis-server`` for the tests of
  the Redis task store the same way;
- ``nox -s lint``: ruff check and ruff format --check;
- ``nox -s tests-without-pydantic``: the suite in an environment without
  pydantic (the tests that need it skip themselves);
- ``nox -s typing``: mypy --strict on the package;
- ``nox -s e2e``: only the end-to-end tests (real hypercorn, real signals);
- ``nox -s bench``: the benchmark suite in ``bench/`` (not run by default);
- ``nox -s fastapi-suite``: FastAPI's own test suite run against trioapi, the
  compatibility measure written to ``docs/compatibility.md`` (not run by
  default; options after ``--``, e.g. ``-- --category bodies``, see
  ``scripts/fastapi_suite.py --help``).
"""

import os
import shutil
import sys

import nox

nox.options.sessions = ["tests", "tests-without-pydantic", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True

COVERAGE_FLOOR = "90"


def install_debian_package(session: nox.Session, command: str, package: str, why: str) -> None:
    """Installs a Debian package the tests use when ``command`` is missing, if we can."""
    if shutil.which(command) is not None:
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        session.run("apt-get", "install", "-y", "-qq", package, external=True, env=env)
    else:
        session.warn(
            f"{command} is not installed: {why} will skip "
            f"(Debian/Ubuntu: apt-get install {package})"
        )


def install_chromium(session: nox.Session) -> None:
    """Headless Chromium for the browser tests (docs pages, the tasks page)."""
    install_debian_package(session, "chromium", "chromium", "the browser tests")


def install_redis_server(session: nox.Session) -> None:
    """redis-server for the tests of the Redis task store."""
    install_debian_package(
        session, "redis-server", "redis-server", "the tests of the Redis task store"
    )


@nox.session
def tests(session: nox.Session) -> None:
    install_redis_server(session)
    install_chromium(session)
    session.install("-e", ".[test]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "--parallel-mode", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report", f"--fail-under={COVERAGE_FLOOR}")


@nox.session(name="tests-without-pydantic")
def tests_without_pydantic(session: nox.Session) -> None:
    # pydantic is an extra: an app without it must work, and import trioapi
    # must not need it. The tests that need pydantic skip themselves here.
    install_redis_server(session)
    session.install(
        "-e", ".[testing,redis]", "pytest>=8.4", "pytest-trio>=0.8", "hypothesis>=6.100"
    )
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "sys.exit('pydantic is installed' if importlib.util.find_spec('pydantic') else 0)",
    )
    session.run("pytest", "-m", "not e2e", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy>=1.13")
    session.run("mypy")


@nox.session
def e2e(session: nox.Session) -> None:
    install_chromium(session)
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "e2e", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    if shutil.which("wrk") is None:
        # wrk is a Debian package, not a Python one; install it when we can.
        if shutil.which("apt-get") and os.geteuid() == 0:
            session.run("apt-get", "update", "-qq", external=True)
            session.run("apt-get", "install", "-y", "-qq", "wrk", external=True)
        else:
            session.error("bench needs wrk: install it (Debian/Ubuntu: apt-get install wrk)")
    install_debian_package(session, "redis-server", "redis-server", "the durable Redis app")
    session.install("-e", ".", "-r", "bench/requirements.txt")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(name="fastapi-suite", venv_backend="none")
def fastapi_suite(session: nox.Session) -> None:
    # The script is stdlib-only and builds its own two venvs (real FastAPI for
    # the baseline, trioapi for the run) in the git-ignored .fastapi-suite/.
    session.run(sys.executable, "scripts/fastapi_suite.py", *session.posargs, external=True)
