"""Forms and uploads: ``await request.form()``, ``UploadFile``, ``FormData``, limits, cleanup.

Requests go through a real app and the in-process client (or hypercorn's trio
server over in-memory streams, for a client that leaves mid-upload). The test
client takes no ``files=``, so multipart bodies are encoded by httpx itself
(:func:`multipart`) or written out by hand when they must be malformed.

To see which temporary files a parse created, the ``spools`` fixture swaps
the standard library's ``SpooledTemporaryFile`` for a subclass that records
its instances; the parser itself runs unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, MutableMapping
from tempfile import SpooledTemporaryFile
from typing import Annotated, Any, Literal

import httpx
import pytest
import trio
import trio.testing

from trioapi import (
    APIRoute,
    APIRouter,
    Depends,
    File,
    Form,
    MalformedRequestError,
    Request,
    TrioAPI,
)
from trioapi._http import forms
from trioapi._http.forms import check_form_limits, parse_form
from trioapi._http.uploads import FormData, UploadFile
from trioapi.testing import InMemoryServer, TestClient

from ._asgi import http_scope

MiB = 1024 * 1024


def multipart(
    data: dict[str, Any] | None = None, files: Any = None
) -> tuple[bytes, dict[str, str]]:
    """A multipart body and its Content-Type header, as httpx encodes ``data``/``files``."""
    request = httpx.Request("POST", "http://testserver/", data=data, files=files)
    return request.read(), {"content-type": request.headers["content-type"]}


BOUNDARY = "b0undary"
MULTIPART_TYPE = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def raw_part(disposition: str, body: bytes, *extra_headers: str) -> bytes:
    headers = "".join(f"{header}\r\n" for header in extra_headers)
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{headers}\r\n".encode()
        + body
        + b"\r\n"
    )


CLOSE = f"--{BOUNDARY}--\r\n".encode()


async def describe(form: FormData) -> list[list[Any]]:
    """The form as JSON: ``[name, text]`` or ``[name, {file details}]`` per item."""
    described: list[list[Any]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            content = await value.read()
            described.append(
                [
                    name,
                    {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": value.size,
                        "sha256": hashlib.sha256(content).hexdigest(),
                        "length": len(content),
                        "rolled": getattr(value.file, "_rolled", None),
                    },
                ]
            )
        else:
            described.append([name, value])
    return described


def file_details(content: bytes, filename: str, content_type: str, *, rolled: bool) -> Any:
    return {
        "filename": filename,
        "content_type": content_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "length": len(content),
        "rolled": rolled,
    }


def make_app(**options: Any) -> tuple[TrioAPI, list[FormData]]:
    """An app whose ``POST /form`` echoes the form; every parsed form is kept for inspection."""
    app = TrioAPI(**options)
    seen: list[FormData] = []

    @app.post("/form")
    async def echo(request: Request) -> list[list[Any]]:
        form = await request.form()
        seen.append(form)
        return await describe(form)

    @app.post("/limited")
    async def limited(
        request: Request,
        max_files: int = 1000,
        max_fields: int = 1000,
        max_part_size: int = MiB,
    ) -> int:
        form = await request.form(
            max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
        )
        seen.append(form)
        return len(form.multi_items())

    @app.post("/small", max_body_size=300)
    async def small(request: Request) -> int:
        form = await request.form()
        seen.append(form)
        return len(form.multi_items())

    return app, seen


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch) -> list[SpooledTemporaryFile[bytes]]:
    created: list[SpooledTemporaryFile[bytes]] = []

    class Recorded(SpooledTemporaryFile[bytes]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(forms, "SpooledTemporaryFile", Recorded)
    return created


# --- urlencoded and multipart fields ---------------------------------------------------


async def test_urlencoded_fields_are_decoded_in_order_and_repeated_names_kept() -> None:
    app, seen = make_app()
    async with TestClient(app) as client:
        response = await client.post(
            "/form", data={"name": "Ada Lovelace", "tag": ["a&b", "c=d"], "note": "é ✓ +%"}
        )
    assert response.status_code == 200
    assert response.json() == [
        ["name", "Ada Lovelace"],
        ["tag", "a&b"],
        ["tag", "c=d"],
        ["note", "é ✓ +%"],
    ]
    form = seen[0]
    assert form.getlist("tag") == ["a&b", "c=d"]
    assert form["tag"] == "c=d"  # the last value, as in Starlette
    assert list(form) == ["name", "tag", "note"]


async def test_urlencoded_blank_values_and_names_without_equals_are_empty_strings() -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        response = await client.post(
            "/form",
            content=b"a=&flag&&b=x+y%2Bz",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.json() == [["a", ""], ["flag", ""], ["b", "x y+z"]]


async def test_multipart_fields_and_a_file() -> None:
    app, seen = make_app()
    body, headers = multipart(
        data={"name": "Ada", "city": "Zürich"},
        files={"upload": ("notes.txt", b"hello world", "text/plain")},
    )
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=headers)
    assert response.status_code == 200
    assert response.json() == [
        ["name", "Ada"],
        ["city", "Zürich"],
        ["upload", file_details(b"hello world", "notes.txt", "text/plain", rolled=False)],
    ]
    upload = seen[0]["upload"]
    assert isinstance(upload, UploadFile)
    assert upload.headers["content-disposition"] == 'form-data; name="upload"; filename="notes.txt"'


async def test_several_files_under_one_name_keep_their_order() -> None:
    app, seen = make_app()
    body, headers = multipart(
        files=[
            ("docs", ("a.txt", b"first", "text/plain")),
            ("docs", ("b.bin", b"\x00\x01second", "application/octet-stream")),
            ("other", ("c.txt", b"third", "text/plain")),
        ]
    )
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=headers)
    assert [item[1]["filename"] for item in response.json()] == ["a.txt", "b.bin", "c.txt"]
    docs = seen[0].getlist("docs")
    assert [doc.filename for doc in docs if isinstance(doc, UploadFile)] == ["a.txt", "b.bin"]
    assert seen[0]["docs"] is docs[1]


async def test_a_part_with_a_content_type_but_no_filename_is_a_text_field() -> None:
    app, _ = make_app()
    body = raw_part('form-data; name="text"', b"plain", "Content-Type: text/plain") + CLOSE
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=MULTIPART_TYPE)
    assert response.json() == [["text", "plain"]]


async def test_a_text_part_is_decoded_with_its_own_charset() -> None:
    app, _ = make_app()
    body = (
        raw_part(
            'form-data; name="a"',
            "café".encode("latin-1"),
            "Content-Type: text/plain; charset=latin-1",
        )
        + raw_part('form-data; name="b"', "café".encode())
        + CLOSE
    )
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=MULTIPART_TYPE)
    assert response.json() == [["a", "café"], ["b", "café"]]


async def test_an_empty_filename_is_still_a_file() -> None:
    # What a browser sends for a file input left empty.
    app, _ = make_app()
    body = (
        raw_part('form-data; name="f"; filename=""', b"", "Content-Type: application/octet-stream")
        + CLOSE
    )
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=MULTIPART_TYPE)
    assert response.json() == [
        ["f", file_details(b"", "", "application/octet-stream", rolled=False)]
    ]


# --- spooling to disk -------------------------------------------------------------------


async def test_a_file_over_one_mib_spills_to_disk_and_one_of_exactly_one_mib_does_not() -> None:
    app, seen = make_app()
    big = bytes(range(256)) * (MiB // 256) + b"!"
    exact = b"e" * MiB
    body, headers = multipart(
        files=[
            ("big", ("big.bin", big, "application/octet-stream")),
            ("exact", ("e.bin", exact, "x/y")),
        ]
    )
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=headers)
    assert response.json() == [
        ["big", file_details(big, "big.bin", "application/octet-stream", rolled=True)],
        ["exact", file_details(exact, "e.bin", "x/y", rolled=False)],
    ]
    upload = seen[0]["big"]
    assert isinstance(upload, UploadFile)
    assert upload.file._rolled  # type: ignore[attr-defined]


async def test_a_file_spills_when_it_arrives_in_many_small_chunks(
    spools: list[SpooledTemporaryFile[bytes]],
) -> None:
    # Chunk by chunk, as a server delivers a large upload: the file's bytes go
    # to the spool as they arrive, and the spool rolls over on the way.
    app, _ = make_app()
    content = hashlib.sha256(b"seed").digest() * (3 * MiB // 32)
    body, headers = multipart(files={"f": ("f.bin", content, "application/octet-stream")})
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    status, answer = await call_app(app, "/form", headers, chunks)
    assert status == 200
    assert answer == [
        ["f", file_details(content, "f.bin", "application/octet-stream", rolled=True)]
    ]
    assert len(spools) == 1


# --- UploadFile -------------------------------------------------------------------------


@pytest.mark.parametrize("max_size", [MiB, 4], ids=["in-memory", "rolled"])
async def test_upload_file_reads_seeks_writes_and_closes(max_size: int) -> None:
    spool: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(max_size=max_size)  # noqa: SIM115
    upload = UploadFile(spool, size=0, filename="x.txt", headers={"Content-Type": "text/plain"})
    assert upload.content_type == "text/plain"
    await upload.write(b"hello ")
    await upload.write(b"world")
    assert upload.size == 11
    assert spool._rolled is (max_size == 4)  # type: ignore[attr-defined]
    await upload.seek(0)
    assert await upload.read(5) == b"hello"
    assert await upload.read() == b" world"
    assert await upload.read() == b""
    await upload.seek(-5, io.SEEK_END)
    assert await upload.read() == b"world"
    await upload.close()
    assert spool.closed
    await upload.close()  # twice is fine


async def test_upload_file_calls_a_file_on_disk_from_a_worker_thread_only() -> None:
    calls: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()

    class Watched(SpooledTemporaryFile[bytes]):
        def _note(self, name: str) -> None:
            calls.append((name, threading.get_ident() == loop_thread))

        def write(self, data: Any) -> int:
            self._note("write")
            return super().write(data)

        def read(self, *args: Any) -> bytes:
            self._note("read")
            return super().read(*args)

        def seek(self, *args: Any) -> int:
            self._note("seek")
            return super().seek(*args)

        def close(self) -> None:
            self._note("close")
            super().close()

    upload = UploadFile(Watched(max_size=8))
    await upload.write(b"1234")  # in memory: called directly
    await upload.seek(0)
    await upload.write(b"123456789")  # this write rolls over to disk
    await upload.seek(0)
    assert await upload.read() == b"123456789"
    await upload.close()
    assert calls == [
        ("write", True),
        ("seek", True),
        ("write", False),
        ("seek", False),
        ("read", False),
        ("close", False),
    ]


async def test_upload_file_over_a_plain_bytes_io_has_no_size_and_no_content_type() -> None:
    upload = UploadFile(io.BytesIO(b"abc"))
    assert (upload.filename, upload.size, upload.content_type) == (None, None, None)
    await upload.write(b"d")
    assert upload.size is None
    await upload.seek(0)
    assert await upload.read() == b"dbc"
    assert "filename=None" in repr(upload)


async def test_closing_a_rolled_upload_file_completes_inside_a_cancelled_scope() -> None:
    spool: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(max_size=1)  # noqa: SIM115
    upload = UploadFile(spool)
    await upload.write(b"on disk")
    with trio.CancelScope() as scope:
        scope.cancel()
        await upload.close()
    assert spool.closed


async def test_uploads_work_in_the_endpoint_and_are_closed_by_async_with() -> None:
    app = TrioAPI()
    kept: list[UploadFile] = []

    @app.post("/edit")
    async def edit(request: Request) -> dict[str, Any]:
        async with request.form() as form:
            upload = form["f"]
            assert isinstance(upload, UploadFile)
            kept.append(upload)
            head = await upload.read(3)
            await upload.seek(0, io.SEEK_END)
            await upload.write(b"+tail")
            await upload.seek(0)
            whole = await upload.read()
            closed_inside = upload.file.closed
        return {"head": head.decode(), "whole": whole.decode(), "closed": closed_inside}

    body, headers = multipart(files={"f": ("f.txt", b"abcdef", "text/plain")})
    async with TestClient(app) as client:
        response = await client.post("/edit", content=body, headers=headers)
    assert response.json() == {"head": "abc", "whole": "abcdef+tail", "closed": False}
    assert kept[0].file.closed


# --- caching and reading twice ----------------------------------------------------------


async def test_the_form_is_parsed_once_and_later_calls_ignore_their_limits() -> None:
    app = TrioAPI()

    @app.post("/twice")
    async def twice(request: Request) -> dict[str, Any]:
        first = await request.form()
        second = await request.form(max_fields=0)
        try:
            await request.body()
        except RuntimeError as error:
            body_error = str(error)
        return {"same": first is second, "body_error": body_error}

    async with TestClient(app) as client:
        response = await client.post("/twice", data={"a": "1"})
    assert response.json() == {
        "same": True,
        "body_error": "the request body was already read as a stream (request.stream() or "
        "request.form()); read it with request.body() first to keep a copy",
    }


async def test_a_body_read_first_is_parsed_as_a_form_from_the_cache() -> None:
    app = TrioAPI()

    @app.post("/both")
    async def both(request: Request) -> dict[str, Any]:
        body = await request.body()
        form = await request.form()
        return {"length": len(body), "form": await describe(form)}

    async with TestClient(app) as client:
        response = await client.post("/both", data={"a": "1", "b": "2"})
    assert response.json() == {"length": 7, "form": [["a", "1"], ["b", "2"]]}


async def test_a_failed_parse_fails_again_the_same_way() -> None:
    app = TrioAPI()

    @app.post("/again")
    async def again(request: Request) -> list[str]:
        details = []
        for _ in range(2):
            try:
                await request.form(max_fields=0)
            except MalformedRequestError as error:
                details.append(error.detail)
        return details

    async with TestClient(app) as client:
        response = await client.post("/again", data={"a": "1"})
    detail = "the form has more fields than this endpoint accepts (max_fields=0)"
    assert response.json() == [detail, detail]


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "text/plain", "multipart/mixed; boundary=x"],
)
async def test_other_content_types_give_an_empty_form_and_leave_the_body_unread(
    content_type: str | None,
) -> None:
    app = TrioAPI()

    @app.post("/other")
    async def other(request: Request) -> dict[str, Any]:
        form = await request.form()
        return {"form": form.multi_items(), "body": (await request.body()).decode()}

    headers = {"content-type": content_type} if content_type else {}
    async with TestClient(app) as client:
        response = await client.post("/other", content=b"a=1", headers=headers)
    assert response.json() == {"form": [], "body": "a=1"}


async def test_an_empty_multipart_body_is_an_empty_form() -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        empty = await client.post("/form", content=b"", headers=MULTIPART_TYPE)
        closed_only = await client.post("/form", content=CLOSE, headers=MULTIPART_TYPE)
    assert (empty.status_code, empty.json()) == (200, [])
    assert (closed_only.status_code, closed_only.json()) == (200, [])


# --- limits -----------------------------------------------------------------------------


async def test_too_many_files_is_a_400_and_the_limit_itself_is_accepted(
    spools: list[SpooledTemporaryFile[bytes]],
) -> None:
    app, _ = make_app()
    body, headers = multipart(files=[("f", ("a", b"1")), ("f", ("b", b"2"))])
    async with TestClient(app) as client:
        refused = await client.post("/limited?max_files=1", content=body, headers=headers)
        accepted = await client.post("/limited?max_files=2", content=body, headers=headers)
    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "the form has more files than this endpoint accepts (max_files=1)"
    }
    assert accepted.json() == 2
    # The refused parse created one file before the second broke the limit, and closed it.
    assert len(spools) == 3
    assert spools[0].closed


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
async def test_too_many_fields_is_a_400(encoding: str) -> None:
    app, _ = make_app()
    fields = {"a": "1", "b": "2", "c": "3"}
    async with TestClient(app) as client:
        if encoding == "multipart":
            body, headers = multipart(data=fields, files={"f": ("f", b"x")})
            refused = await client.post("/limited?max_fields=2", content=body, headers=headers)
            accepted = await client.post("/limited?max_fields=3", content=body, headers=headers)
        else:
            refused = await client.post("/limited?max_fields=2", data=fields)
            accepted = await client.post("/limited?max_fields=3", data=fields)
    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "the form has more fields than this endpoint accepts (max_fields=2)"
    }
    assert accepted.json() == (4 if encoding == "multipart" else 3)


async def test_a_multipart_text_field_over_max_part_size_is_a_400_but_a_file_is_not() -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        over_body = raw_part('form-data; name="text"', b"abcd") + CLOSE
        over = await client.post(
            "/limited?max_part_size=3", content=over_body, headers=MULTIPART_TYPE
        )
        at_body, headers = multipart(data={"text": "abc"}, files={"f": ("f", b"0123456789")})
        at = await client.post("/limited?max_part_size=3", content=at_body, headers=headers)
    assert over.status_code == 400
    assert over.json() == {
        "detail": "form field 'text' is larger than this endpoint accepts (max_part_size=3 bytes)"
    }
    assert at.json() == 2


async def test_an_urlencoded_field_over_max_part_size_counts_its_name_and_value() -> None:
    app, _ = make_app()
    async with TestClient(app) as client:
        over = await client.post("/limited?max_part_size=4", data={"ab": "cde"})
        at = await client.post("/limited?max_part_size=4", data={"ab": "cd"})
        long_name = await client.post("/limited?max_part_size=4", data={"abcde": ""})
    assert over.status_code == 400
    assert over.json() == {
        "detail": "form field 'ab' is larger than this endpoint accepts (max_part_size=4 bytes)"
    }
    assert at.json() == 1
    assert long_name.json() == {
        "detail": "a form field is larger than this endpoint accepts (max_part_size=4 bytes)"
    }


async def test_a_limit_stops_reading_the_body(spools: list[SpooledTemporaryFile[bytes]]) -> None:
    app, _ = make_app()
    body = raw_part('form-data; name="f"; filename="a"', b"A") + raw_part(
        'form-data; name="f"; filename="b"', b"B"
    )
    chunks = [body, b"never read", CLOSE]
    status, answer = await call_app(app, "/limited?max_files=1", MULTIPART_TYPE, chunks)
    assert (status, answer) == (
        400,
        {"detail": "the form has more files than this endpoint accepts (max_files=1)"},
    )
    assert chunks == [b"never read", CLOSE]  # what call_app did not hand over
    assert [spool.closed for spool in spools] == [True]


def test_form_limits_settings_are_checked_and_copied() -> None:
    limits = {"max_fields": 1, "max_part_size": 0}
    checked = check_form_limits(limits)
    limits["max_fields"] = 5
    assert checked == {"max_fields": 1, "max_part_size": 0}
    assert check_form_limits(None) == {}
    bad_limits: list[tuple[dict[str, object], str]] = [
        ({"max_parts": 1}, "max_parts"),
        ({"max_files": -1}, "max_files"),
        ({"max_fields": False}, "max_fields"),
        ({"max_part_size": 1.5}, "max_part_size"),
    ]
    for bad, word in bad_limits:
        with pytest.raises(ValueError, match=word):
            check_form_limits(bad)


async def text_field(text: Annotated[str, Form()]) -> str:
    return text


async def test_form_limits_merge_setting_by_setting_from_the_app_down_to_the_route() -> None:
    # Each level sets something else; where two set the same, the inner wins.
    inner = APIRouter(form_limits={"max_fields": 1})
    inner.post("/", form_limits={"max_part_size": 3})(text_field)
    outer = APIRouter()
    outer.include_router(inner, form_limits={"max_fields": 4})
    app = TrioAPI(form_limits={"max_part_size": 1})
    app.include_router(outer, prefix="/none", form_limits={"max_files": 0})
    app.include_router(outer, prefix="/one", form_limits={"max_files": 1})
    with_file = [("text", (None, "abc")), ("file", ("f.txt", b"12345"))]
    async with TestClient(app) as client:
        no_files = await client.post("/none/", files=with_file)
        one_file = await client.post("/one/", files=with_file)
        two_fields = await client.post("/one/", files=[*with_file, ("text", (None, "z"))])
        too_long = await client.post("/one/", files={"text": (None, "abcd")})
    assert no_files.status_code == 400
    assert "max_files=0" in no_files.json()["detail"]
    assert (one_file.status_code, one_file.json()) == (200, "abc")  # part size 3, not the app's 1
    assert two_fields.status_code == 400
    assert "max_fields=1" in two_fields.json()["detail"]  # the router's 1, not the inclusion's 4
    assert too_long.status_code == 400
    assert "max_part_size=3" in too_long.json()["detail"]
    assert app.routes[-1].form_limits == {"max_files": 1, "max_fields": 1, "max_part_size": 3}


async def test_a_mounted_apps_routes_keep_the_parent_apps_form_limits_under_their_own() -> None:
    # FastAPI's rule: the outer app's limits reach into what it mounts; the
    # mounted route's own setting wins where both set one.
    route = APIRoute("/", text_field, methods=["POST"], form_limits={"max_fields": 1})
    child = TrioAPI(routes=[route])
    app = TrioAPI(form_limits={"max_part_size": 2, "max_fields": 0})
    app.mount("/child", child)
    async with TestClient(app) as client:
        short = await client.post("/child/", files={"text": (None, "ab")})
        long = await client.post("/child/", files={"text": (None, "abc")})
        alone = await client.post("/", files={"text": (None, "ab")})
    assert (short.status_code, short.json()) == (200, "ab")  # max_fields 1, not the parent's 0
    assert long.status_code == 400
    assert "max_part_size=2" in long.json()["detail"]  # the parent's
    assert alone.status_code == 404
    async with TestClient(child) as client:  # served on its own, only its own limits
        assert (await client.post("/", files={"text": (None, "abc")})).json() == "abc"


async def test_a_route_raises_one_limit_and_keeps_the_apps_others() -> None:
    app = TrioAPI(form_limits={"max_fields": 2})
    app.post("/notes")(text_field)
    app.post("/documents", form_limits={"max_part_size": 2 * 1024 * 1024})(text_field)
    long_text = "x" * (1024 * 1024 + 1)  # over the default 1 MiB per field
    async with TestClient(app) as client:
        note = await client.post("/notes", data={"text": long_text})
        document = await client.post("/documents", data={"text": long_text})
        crowded = await client.post("/documents", data={"text": "a", "b": "1", "c": "2"})
    assert note.status_code == 400
    assert document.json() == long_text
    assert crowded.status_code == 400
    assert "max_fields=2" in crowded.json()["detail"]


async def test_form_limits_are_for_automatic_parsing_and_are_checked_where_set() -> None:
    limits = {"max_fields": 0}
    app = TrioAPI(form_limits=limits)
    limits["max_fields"] = 5  # the app keeps its copy

    @app.post("/manual")
    async def manual(request: Request) -> str:
        async with request.form(max_fields=1) as form:  # its own limits, not the app's
            return str(form["text"])

    app.post("/auto")(text_field)
    async with TestClient(app) as client:
        manual_answer = await client.post("/manual", data={"text": "ok"})
        auto_answer = await client.post("/auto", data={"text": "ok"})
    assert (manual_answer.status_code, manual_answer.json()) == (200, "ok")
    assert auto_answer.status_code == 400
    for make in (
        lambda: TrioAPI(form_limits={"max_parts": 1}),
        lambda: APIRouter(form_limits={"max_files": -1}),
        lambda: TrioAPI().include_router(APIRouter(), form_limits={"max_fields": False}),
        lambda: TrioAPI().post("/", form_limits={"max_part_size": 1.5})(text_field),
    ):
        with pytest.raises(ValueError, match="form limit"):
            make()


async def test_parse_form_refuses_a_negative_limit() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        yield b""

    with pytest.raises(ValueError, match="max_fields must be a non-negative number"):
        await parse_form("application/x-www-form-urlencoded", nothing(), max_fields=-1)


# --- the body limit and the body timeout ------------------------------------------------


async def test_a_form_over_the_body_limit_is_a_413(
    spools: list[SpooledTemporaryFile[bytes]],
) -> None:
    app, _ = make_app()
    body, headers = multipart(files={"f": ("f.txt", b"x" * 400, "text/plain")})
    async with TestClient(app) as client:
        response = await client.post("/small", content=body, headers=headers)
    assert response.status_code == 413
    assert spools == []  # refused on Content-Length, before any part was read


async def test_the_body_limit_counts_streamed_bytes_stops_reading_and_closes_the_files(
    spools: list[SpooledTemporaryFile[bytes]],
) -> None:
    app, seen = make_app()
    prefix = raw_part('form-data; name="f"; filename="f.txt"', b"hello")[:-2]
    chunks = [prefix, b"x" * 300, b"never read", b"\r\n" + CLOSE]
    status, answer = await call_app(app, "/small", MULTIPART_TYPE, chunks)  # no Content-Length
    assert status == 413
    assert answer == {"detail": "the request body is larger than this endpoint accepts (300 bytes)"}
    assert chunks == [b"never read", b"\r\n" + CLOSE]
    assert seen == []
    assert [spool.closed for spool in spools] == [True]


async def test_a_form_that_stops_arriving_is_a_408_at_the_body_timeout(
    autojump_clock: trio.testing.MockClock, spools: list[SpooledTemporaryFile[bytes]]
) -> None:
    app, _ = make_app(body_timeout=5.0)
    first = raw_part('form-data; name="f"; filename="f.txt"', b"partial")[:-2]
    status, answer = await call_app(app, "/form", MULTIPART_TYPE, [first], then_wait=True)
    assert status == 408
    assert answer == {"detail": "the request body stopped arriving for 5 s"}
    assert trio.current_time() == 5.0
    assert [spool.closed for spool in spools] == [True]


# --- malformed bodies -------------------------------------------------------------------


MALFORMED = {
    "no boundary": (
        {"content-type": "multipart/form-data"},
        raw_part('form-data; name="a"', b"1") + CLOSE,
        "the multipart/form-data Content-Type has no boundary",
    ),
    "another boundary": (
        {"content-type": "multipart/form-data; boundary=other"},
        raw_part('form-data; name="a"', b"1") + CLOSE,
        "the multipart body is malformed",
    ),
    "truncated in a part": (
        MULTIPART_TYPE,
        raw_part('form-data; name="a"', b"1") + f"--{BOUNDARY}\r\nContent-Dispo".encode(),
        "the multipart body ended before its closing boundary",
    ),
    "truncated in a file": (
        MULTIPART_TYPE,
        raw_part('form-data; name="f"; filename="f"', b"data")[:-2],
        "the multipart body ended before its closing boundary",
    ),
    "not multipart at all": (MULTIPART_TYPE, b"just some text", "the multipart body is malformed"),
    "a part without a name": (
        MULTIPART_TYPE,
        raw_part("form-data", b"1") + CLOSE,
        "a part of the multipart body has no name in its Content-Disposition header",
    ),
    "a part without Content-Disposition": (
        MULTIPART_TYPE,
        f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nvalue\r\n".encode() + CLOSE,
        "a part of the multipart body has no name in its Content-Disposition header",
    ),
    "a boundary too long": (
        {"content-type": "multipart/form-data; boundary=" + "b" * 300},
        b"--" + b"b" * 300 + b"--\r\n",
        "the multipart body is malformed: Boundary length 300 exceeds maximum of 256",
    ),
    "too many part headers": (
        MULTIPART_TYPE,
        raw_part('form-data; name="a"', b"1", *(f"X-{i}: {i}" for i in range(20))) + CLOSE,
        "the multipart body is malformed",
    ),
    "a field not in UTF-8": (
        MULTIPART_TYPE,
        raw_part('form-data; name="a"', "é".encode("latin-1")) + CLOSE,
        "form field 'a' is not valid utf-8",
    ),
    "an unknown charset": (
        {"content-type": f"multipart/form-data; boundary={BOUNDARY}; charset=klingon"},
        raw_part('form-data; name="a"', b"1") + CLOSE,
        "the form declares an unknown charset 'klingon'",
    ),
    "urlencoded not in UTF-8": (
        {"content-type": "application/x-www-form-urlencoded"},
        b"a=%E9",
        "form field 'a' is not valid utf-8",
    ),
}


@pytest.mark.parametrize(("headers", "body", "detail"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_form_is_a_400_with_a_clear_detail(
    headers: dict[str, str],
    body: bytes,
    detail: str,
    spools: list[SpooledTemporaryFile[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = make_app()
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert seen == []
    assert all(spool.closed for spool in spools)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_python_multipart_warnings_do_not_fall_through_to_the_last_resort_handler() -> None:
    # Its malformed-body warnings would otherwise be printed to stderr under
    # a server that configures no logging.
    forms._quiet_python_multipart()
    handlers = logging.getLogger("python_multipart").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


def test_importing_trioapi_does_not_import_python_multipart() -> None:
    code = "import sys, trioapi; print('python_multipart' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# --- closing the files when the request ends --------------------------------------------


async def test_a_dependency_can_close_the_request_files_when_the_request_ends() -> None:
    app = TrioAPI()
    kept: list[UploadFile] = []

    async def closing(request: Request) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await request.close()

    @app.post("/upload", dependencies=[Depends(closing)])
    async def upload(request: Request) -> bool:
        form = await request.form()
        files = [value for value in form.getlist("f") if isinstance(value, UploadFile)]
        kept.extend(files)
        return any(file.file.closed for file in files)

    big = b"z" * (MiB + 1)
    body, headers = multipart(files=[("f", ("a", b"small")), ("f", ("b", big))])
    async with TestClient(app) as client:
        response = await client.post("/upload", content=body, headers=headers)
    assert response.json() is False  # open while the endpoint runs
    assert [file.file._rolled for file in kept] == [False, True]  # type: ignore[attr-defined]
    assert [file.file.closed for file in kept] == [True, True]


async def test_request_close_without_a_form_does_nothing() -> None:
    app = TrioAPI()

    @app.post("/plain")
    async def plain(request: Request) -> str:
        await request.close()
        return (await request.body()).decode()

    async with TestClient(app) as client:
        response = await client.post("/plain", content=b"kept")
    assert response.json() == "kept"


async def test_the_app_closes_the_form_files_when_the_request_ends() -> None:
    app, seen = make_app()
    body, headers = multipart(files={"f": ("f.txt", b"data", "text/plain")})
    async with TestClient(app) as client:
        response = await client.post("/form", content=body, headers=headers)
    assert response.status_code == 200
    upload = seen[0]["f"]
    assert isinstance(upload, UploadFile)
    assert upload.file.closed


async def test_a_client_leaving_mid_upload_closes_the_files(
    spools: list[SpooledTemporaryFile[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    # Through hypercorn's own trio server: the client sends the headers and
    # 1.5 MiB of a 3 MiB upload, then hangs up.
    app, seen = make_app()
    head = raw_part('form-data; name="f"; filename="big.bin"', b"")[:-2]
    sent = head + b"y" * (3 * MiB // 2)
    request_head = (
        b"POST /form HTTP/1.1\r\nhost: t\r\n"
        + f"content-type: {MULTIPART_TYPE['content-type']}\r\n".encode()
        + f"content-length: {len(head) + 3 * MiB + 2 + len(CLOSE)}\r\n\r\n".encode()
    )
    async with InMemoryServer(app) as server:
        conn = await server.connect()
        await conn.send_bytes(request_head + sent)
        await trio.testing.wait_all_tasks_blocked()
        await conn.aclose()
        await trio.testing.wait_all_tasks_blocked()
        await server.shutdown()
    assert seen == []
    assert len(spools) == 1
    assert spools[0]._rolled  # type: ignore[attr-defined]
    assert spools[0].closed
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_client_leaving_mid_upload_through_asgi_closes_the_files(
    spools: list[SpooledTemporaryFile[bytes]],
) -> None:
    app, seen = make_app()
    head = raw_part('form-data; name="f"; filename="f.txt"', b"partial")[:-2]
    status, _ = await call_app(app, "/form", MULTIPART_TYPE, [head], then_disconnect=True)
    assert status == 400  # nobody reads it: the client is gone
    assert seen == []
    assert [spool.closed for spool in spools] == [True]


# --- FormData ---------------------------------------------------------------------------


async def test_form_data_is_an_immutable_multi_dict() -> None:
    upload = UploadFile(io.BytesIO(b"x"), filename="x")
    form = FormData([("a", "1"), ("f", upload), ("a", "2")], b="3")
    assert form["a"] == "2"
    assert form.getlist("a") == ["1", "2"]
    assert form.getlist("missing") == []
    assert form.multi_items() == [("a", "1"), ("f", upload), ("a", "2"), ("b", "3")]
    assert list(form.keys()) == ["a", "f", "b"]
    assert len(form) == 3
    assert "f" in form
    assert "z" not in form
    assert form.get("z") is None
    assert FormData({"a": "1"}) == FormData([("a", "1")]) == FormData(FormData(a="1"))
    assert FormData(a="1") != FormData(a="2")
    assert FormData() != {}
    assert repr(FormData(a="1")) == "FormData([('a', '1')])"
    with pytest.raises(TypeError):
        form["a"] = "3"  # type: ignore[index]
    await form.close()
    assert upload.file.closed


async def test_form_data_close_closes_every_file_even_when_one_fails() -> None:
    class Broken(io.BytesIO):
        def close(self) -> None:
            raise OSError("disk gone")

    first = UploadFile(Broken(b"1"))
    second = UploadFile(io.BytesIO(b"2"))
    with pytest.raises(OSError, match="disk gone"):
        await FormData([("a", first), ("b", second)]).close()
    assert second.file.closed


# --- helpers ----------------------------------------------------------------------------


async def call_app(
    app: TrioAPI,
    target: str,
    headers: dict[str, str],
    chunks: list[bytes],
    *,
    then_wait: bool = False,
    then_disconnect: bool = False,
) -> tuple[int, Any]:
    """Calls ``app`` as a server would, handing it ``chunks`` one ``receive()`` at a time.

    Chunks the app did not ask for stay in ``chunks``. After the last one the
    body ends, unless ``then_wait`` (the client goes quiet) or
    ``then_disconnect`` (the client leaves).
    """
    path, _, query = target.partition("?")
    scope = http_scope(path, "POST")
    scope["query_string"] = query.encode()
    scope["headers"] = [
        *scope["headers"],
        *((name.encode(), value.encode()) for name, value in headers.items()),
    ]
    sent: list[MutableMapping[str, Any]] = []
    done = trio.Event()
    open_ended = then_wait or then_disconnect

    async def receive() -> MutableMapping[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks) or open_ended}
        if then_disconnect:
            return {"type": "http.disconnect"}
        if then_wait:
            await trio.sleep_forever()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body) if body else None


# --- form models that may be left out, as FastAPI 0.165 reads them -------------------------

try:
    import pydantic
except ImportError:  # the tests-without-pydantic session
    pydantic = None

needs_pydantic = pytest.mark.skipif(pydantic is None, reason="pydantic is not installed")

if pydantic is not None:

    class Profile(pydantic.BaseModel):
        name: str
        age: int
        tags: list[str] = pydantic.Field(default_factory=list)

    class Settings(pydantic.BaseModel):
        theme: str = "light"
        tags: list[str] = pydantic.Field(default_factory=list)

    class Aliased(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        value: Annotated[
            str, pydantic.Field(validation_alias=pydantic.AliasChoices("primary", "secondary"))
        ]

    class StrictProfile(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        name: str = "default"

    class Token(pydantic.BaseModel):
        token: str

    class TextForm(pydantic.BaseModel):
        kind: Literal["text"]
        value: str

    class ListForm(pydantic.BaseModel):
        kind: Literal["list"]
        items: list[int]

    SETTINGS = Settings(theme="dark")

    Tagged = Annotated[
        Annotated[TextForm, pydantic.Tag("text")]
        | Annotated[ListForm, pydantic.Tag("list")]
        | None,
        Form(),
    ]


@needs_pydantic
async def test_an_optional_form_model_is_none_until_one_of_its_fields_is_sent() -> None:
    app = TrioAPI()

    @app.post("/")
    async def submit(
        token: Annotated[str, Form()], profile: Annotated[Profile | None, Form()] = None
    ) -> Any:
        return profile

    async with TestClient(app) as client:
        unsent = await client.post("/", data={"token": "t"})
        sent = await client.post(
            "/", data={"token": "t", "name": "Rick", "age": "70", "tags": ["a", "b"]}
        )
        partial = await client.post("/", data={"token": "t", "tags": "a"})
    assert (unsent.status_code, unsent.json()) == (200, None)
    assert sent.json() == {"name": "Rick", "age": 70, "tags": ["a", "b"]}
    assert partial.status_code == 422
    assert partial.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "name"],
                "msg": "Field required",
                "input": {"tags": ["a"], "token": "t"},
            },
            {
                "type": "missing",
                "loc": ["body", "age"],
                "msg": "Field required",
                "input": {"tags": ["a"], "token": "t"},
            },
        ]
    }


@needs_pydantic
async def test_a_form_models_default_is_a_fresh_copy_for_every_request() -> None:
    app = TrioAPI()

    @app.post("/")
    async def submit(settings: Annotated[Settings | None, Form()] = SETTINGS) -> Any:
        assert settings is not None
        settings.tags.append("seen")
        return settings

    async with TestClient(app) as client:
        first = await client.post("/")
        second = await client.post("/")
    assert first.json() == second.json() == {"theme": "dark", "tags": ["seen"]}
    assert SETTINGS.tags == []


@needs_pydantic
async def test_the_alias_choices_after_the_one_a_form_model_used_are_extra_fields() -> None:
    app = TrioAPI()

    @app.post("/")
    async def submit(data: Annotated[Aliased, Form()]) -> Any:
        return data

    async with TestClient(app) as client:
        second = await client.post("/", data={"primary": "", "secondary": "hello"})
        first = await client.post("/", data={"primary": "hello", "secondary": ""})
    assert (second.status_code, second.json()) == (200, {"value": "hello"})
    assert first.status_code == 422
    assert first.json() == {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "secondary"],
                "msg": "Extra inputs are not permitted",
                "input": "",
            }
        ]
    }


@needs_pydantic
async def test_the_branches_of_a_form_union_keep_their_own_tags() -> None:
    app = TrioAPI()

    @app.post("/")
    async def submit(data: Tagged = None) -> Any:
        return data

    async with TestClient(app) as client:
        unsent = await client.post("/")
        invalid = await client.post("/", data={"kind": "text"})
    assert (unsent.status_code, unsent.json()) == (200, None)
    assert invalid.status_code == 422
    assert invalid.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "text", "value"],
                "msg": "Field required",
                "input": {"kind": "text"},
            },
            {
                "type": "literal_error",
                "loc": ["body", "list", "kind"],
                "msg": "Input should be 'list'",
                "input": "text",
                "ctx": {"expected": "'list'"},
            },
            {
                "type": "missing",
                "loc": ["body", "list", "items"],
                "msg": "Field required",
                "input": {"kind": "text"},
            },
        ]
    }


@needs_pydantic
async def test_an_upload_a_form_model_forbids_is_a_422_naming_it() -> None:
    app = TrioAPI()

    @app.post("/")
    async def submit(
        credentials: Annotated[Token, Form()],
        avatar: Annotated[UploadFile | None, File()] = None,
        profile: Annotated[StrictProfile | None, Form()] = None,
    ) -> Any:
        return profile

    async with TestClient(app) as client:
        response = await client.post(
            "/", data={"token": "secret"}, files={"avatar": ("image.png", b"image")}
        )
    assert response.status_code == 422
    token, avatar = response.json()["detail"]
    assert token == {
        "type": "extra_forbidden",
        "loc": ["body", "token"],
        "msg": "Extra inputs are not permitted",
        "input": "secret",
    }
    assert (avatar["type"], avatar["loc"]) == ("extra_forbidden", ["body", "avatar"])
    assert (avatar["input"]["filename"], avatar["input"]["size"]) == ("image.png", 5)


async def test_every_value_of_a_file_list_must_be_a_file() -> None:
    app = TrioAPI()

    @app.post("/")
    async def upload(files: Annotated[list[UploadFile], File()]) -> list[str | None]:
        return [file.filename for file in files]

    async with TestClient(app) as client:
        response = await client.post(
            "/", files=[("files", ("a.txt", b"a")), ("files", (None, "text"))]
        )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "files", 1],
                "msg": "Value error, Expected UploadFile, received: <class 'str'>",
                "input": "text",
                "ctx": {"error": {}},
            }
        ]
    }
