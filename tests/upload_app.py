"""An upload app for the memory tests (``test_upload_memory.py``, ``bench/upload_memory.py``).

``POST /upload`` takes one file of up to 2 GiB (the route raises the body
limit) and answers its size and CRC-32, read back in 1 MiB pieces from where
the upload spilled to; ``POST /fields`` takes any number of text fields and
``POST /files`` any number of files, both under the default form limits.
"""

from __future__ import annotations

import zlib
from typing import Annotated

from trioapi import File, Form, TrioAPI, UploadFile

app = TrioAPI()

PIECE = 1 << 20


@app.post("/upload", max_body_size=2 * 2**30)
async def upload(file: UploadFile) -> dict[str, int]:
    size = crc = 0
    while piece := await file.read(PIECE):
        size += len(piece)
        crc = zlib.crc32(piece, crc)
    return {"size": size, "crc": crc}


@app.post("/fields")
async def fields(names: Annotated[list[str], Form()]) -> dict[str, int]:
    return {"fields": len(names)}


@app.post("/files")
async def files(parts: Annotated[list[bytes], File()]) -> dict[str, int]:
    return {"files": len(parts)}
