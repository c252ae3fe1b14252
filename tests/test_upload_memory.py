"""Uploads through ``python -m trioapi`` stream to disk, in bounded memory.

Against the real command line (``tests/upload_app.py`` in a subprocess on
127.0.0.1): a 256 MiB file uploaded in one multipart request, generated and
sent piece by piece, must arrive whole (its size and CRC-32 answered back)
while the server's peak RSS grows by at most 32 MiB; forms of 10,000 text
fields or 10,000 files must be refused (400, as FastAPI answers past its
limits of 1,000) within the same bound; and the uploads' temporary files
must be gone once each request ended (the server's ``TMPDIR`` is a folder of
the test's, empty after every request). Peak RSS is the kernel's ``VmHWM``,
reset before each request through ``/proc/PID/clear_refs``.
The figure for 1 GiB (docs/reliability.md) comes from the same test:
``UPLOAD_MEMORY_MIB=1024 pytest tests/test_upload_memory.py -s``.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_e2e import TRIOAPI, ServerProcess, launch

__all__ = ["launch"]  # the fixture, used by the tests below

pytestmark = pytest.mark.e2e

MIB = 2**20
BOUND = 32 * MIB
"""The most a request may add to the server's peak RSS."""
BOUNDARY = "trioapi-upload-memory-boundary"
PIECE = MIB
UPLOAD_MIB = int(os.environ.get("UPLOAD_MEMORY_MIB", "256"))
"""The size of the big upload, in MiB (256 unless the environment says otherwise)."""


def pattern(size: int) -> Iterator[bytes]:
    """``size`` bytes in 1 MiB pieces, each different (so that a lost piece changes the CRC)."""
    sent = 0
    number = 0
    while sent < size:
        piece = (number.to_bytes(8, "big") * (PIECE // 8))[: size - sent]
        sent += len(piece)
        number += 1
        yield piece


def multipart_file(size: int) -> tuple[int, Iterator[bytes], int]:
    """The body of a form with one file of ``size`` bytes: its length, pieces and the file's CRC."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    crc = 0
    for piece in pattern(size):
        crc = zlib.crc32(piece, crc)

    def pieces() -> Iterator[bytes]:
        yield head
        yield from pattern(size)
        yield tail

    return len(head) + size + len(tail), pieces(), crc


def many_parts(count: int, *, files: bool) -> bytes:
    """A form of ``count`` text fields (``names``) or ``count`` small files (``parts``)."""
    if files:
        part = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="parts"; '
            'filename="f.txt"\r\nContent-Type: text/plain\r\n\r\nx\r\n'
        )
    else:
        part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="names"\r\n\r\nx\r\n'
    return (part * count + f"--{BOUNDARY}--\r\n").encode()


def post(port: int, path: str, length: int, pieces: Iterator[bytes]) -> tuple[int, bytes]:
    """Sends one POST piece by piece; its status and body (read to the close)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head)
        try:
            for piece in pieces:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole body was sent: the answer is still there to read
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


class Memory:
    """The server's peak RSS, reset before each request."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0

    def _field(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {name} for {self.pid}")

    def reset(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        self.before = self._field("VmRSS")

    def growth(self) -> int:
        return self._field("VmHWM") - self.before


def start(launch: object, tmp_path: Path) -> tuple[ServerProcess, int, Memory, Path]:
    spool = tmp_path / "spool"
    spool.mkdir()
    server = launch(  # type: ignore[operator]
        *TRIOAPI, "tests.upload_app:app", "--bind", "127.0.0.1:0", "--no-access-log",
        env={"TMPDIR": str(spool)},
    )  # fmt: skip
    port = server.wait_ready()
    # The routes' first calls (imports, python-multipart's parser), before measuring.
    assert post(port, "/fields", *body_of(many_parts(1, files=False)))[0] == 200
    assert post(port, "/upload", *multipart_file(10)[:2])[0] == 200
    return server, port, Memory(server.process.pid), spool


def body_of(data: bytes) -> tuple[int, Iterator[bytes]]:
    return len(data), iter([data])


def test_a_big_upload_streams_to_disk_in_bounded_memory(launch: object, tmp_path: Path) -> None:
    server, port, memory, spool = start(launch, tmp_path)
    size = UPLOAD_MIB * MIB
    length, pieces, crc = multipart_file(size)
    memory.reset()
    status, body = post(port, "/upload", length, pieces)
    growth = memory.growth()
    print(f"{UPLOAD_MIB} MiB upload: peak RSS +{growth / MIB:.1f} MiB")
    assert (status, body) == (200, f'{{"size":{size},"crc":{crc}}}'.encode())
    assert growth <= BOUND, f"peak RSS grew {growth / MIB:.1f} MiB"
    assert list(spool.iterdir()) == []  # the temporary file went with the request
    assert "Traceback" not in server.stderr


@pytest.mark.parametrize("files", [False, True], ids=["fields", "files"])
def test_a_10000_part_form_is_refused_in_bounded_memory(
    launch: object, tmp_path: Path, files: bool
) -> None:
    server, port, memory, spool = start(launch, tmp_path)
    data = many_parts(10_000, files=files)
    memory.reset()
    status, body = post(port, "/files" if files else "/fields", *body_of(data))
    growth = memory.growth()
    print(f"10,000 {'files' if files else 'fields'}: {status}, peak RSS +{growth / MIB:.1f} MiB")
    assert status == 400
    assert (b"max_files=1000" if files else b"max_fields=1000") in body
    assert growth <= BOUND, f"peak RSS grew {growth / MIB:.1f} MiB"
    assert list(spool.iterdir()) == []
    assert "Traceback" not in server.stderr
