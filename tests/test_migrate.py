"""``python -m trioapi migrate``: FastAPI code, its Starlette imports included, ported and run."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trioapi._server.migrate import main, port_source

FASTAPI_APP = textwrap.dedent(
    '''\
    """An app as FastAPI's docs write it ("FastAPI" in this string stays)."""
    import fastapi
    from fastapi import BackgroundTasks, FastAPI
    from fastapi.exceptions import FastAPIError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import (
        PlainTextResponse,
    )
    from starlette import status

    app = FastAPI(title="FastAPI app")  # a comment about FastAPI
    done: list[str] = []


    @app.exception_handler(StarletteHTTPException)
    async def as_text(request: fastapi.Request, exc: StarletteHTTPException) -> PlainTextResponse:
        return PlainTextResponse(f"{exc.detail}!", status_code=exc.status_code)


    @app.get("/items/{item_id}")
    def read(item_id: int, tasks: BackgroundTasks) -> dict[str, int]:
        if item_id == 0:
            raise fastapi.HTTPException(status.HTTP_404_NOT_FOUND, "no item")
        tasks.add_task(done.append, "ran")
        return {"item_id": item_id}


    assert issubclass(FastAPIError, Exception)
    '''
)


def test_the_imports_are_ported_and_strings_and_comments_are_left_alone() -> None:
    result = port_source(FASTAPI_APP)
    assert result.left == ()
    text = result.text
    assert "import trioapi\n" in text
    assert "from trioapi import BackgroundTasks, TrioAPI\n" in text
    assert "from trioapi.exceptions import TrioAPIError\n" in text
    assert "from trioapi.exceptions import HTTPException as StarletteHTTPException\n" in text
    assert "from trioapi.responses import (\n    PlainTextResponse,\n)\n" in text
    assert "from trioapi import status\n" in text
    assert 'app = TrioAPI(title="FastAPI app")  # a comment about FastAPI\n' in text
    assert "raise trioapi.HTTPException(" in text
    assert '("FastAPI" in this string stays)' in text
    assert "starlette" not in text.replace("StarletteHTTPException", "")


def test_the_ported_app_runs_on_trioapi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ported_app.py").write_text(port_source(FASTAPI_APP).text)
    monkeypatch.syspath_prepend(str(tmp_path))
    import ported_app  # type: ignore[import-not-found]

    from trioapi.testclient import TestClient

    with TestClient(ported_app.app) as client:
        assert client.get("/items/3").json() == {"item_id": 3}
        missing = client.get("/items/0")
    assert (missing.status_code, missing.text) == (404, "no item!")
    assert ported_app.done == ["ran"]


def test_what_trioapi_lacks_is_left_as_it_is_and_reported() -> None:
    source = textwrap.dedent(
        """\
        from starlette.routing import Match
        from starlette.responses import JSONResponse
        from fastapi.no_such_module import Thing, FastAPIError
        import starlette.routing

        x = starlette.routing.Match
        raise FastAPIError(Thing)
        """
    )
    result = port_source(source)
    assert [(item.line, item.module) for item in result.left] == [
        (1, "starlette.routing"),
        (3, "fastapi.no_such_module"),
        (4, "starlette"),
    ]
    assert "trioapi.routing has no Match" in result.left[0].why
    lines = result.text.splitlines()
    assert lines[0] == "from starlette.routing import Match"
    assert lines[1] == "from trioapi.responses import JSONResponse"
    assert lines[2] == "from fastapi.no_such_module import Thing, FastAPIError"
    # A name a kept import binds keeps its spelling everywhere.
    assert lines[6] == "raise FastAPIError(Thing)"
    # The file still needs starlette, so its other uses of the name stay too.
    assert lines[3] == "import starlette.routing"
    assert lines[5] == "x = starlette.routing.Match"


def test_the_command_shows_writes_and_checks(tmp_path: Path) -> None:
    app = tmp_path / "pkg" / "app.py"
    app.parent.mkdir()
    app.write_text("from fastapi import FastAPI\napp = FastAPI()\n")
    (tmp_path / "pkg" / "broken.py").write_text("def (:\n")
    out = io.StringIO()
    assert main([str(tmp_path)], out=out) == 0
    shown = out.getvalue()
    assert "+from trioapi import TrioAPI" in shown
    assert "broken.py: skipped, not valid Python" in shown
    assert app.read_text() == "from fastapi import FastAPI\napp = FastAPI()\n"
    assert main(["--check", str(tmp_path)], out=io.StringIO()) == 1
    assert main(["--write", str(tmp_path)], out=io.StringIO()) == 0
    assert app.read_text() == "from trioapi import TrioAPI\napp = TrioAPI()\n"
    assert main(["--check", str(app)], out=io.StringIO()) == 0


def test_python_m_trioapi_migrate(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("from starlette.status import HTTP_200_OK\n")
    done = subprocess.run(
        [sys.executable, "-m", "trioapi", "migrate", "--write", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 file(s) changed, 0 import(s) left as they are" in done.stdout
    assert app.read_text() == "from trioapi.status import HTTP_200_OK\n"
