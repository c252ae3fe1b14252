"""Accept an upload, answer 202 at once, and process the file in the background.

The upload's temporary file belongs to the request: it is closed (and
deleted) when the request ends, as in FastAPI >= 0.106, so a background task
must not read ``file`` itself. The endpoint moves the data to a file of its
own (in a worker thread: it may be large) and hands the task that path.
Run it with ``python -m trioapi examples.upload_tasks:app`` and try
``curl -F file=@README.md http://127.0.0.1:8000/uploads``; the digest lands
in ``log.txt``.
"""

import hashlib
import os
import shutil
import tempfile

import trio

from trioapi import BackgroundTasks, TrioAPI, UploadFile

app = TrioAPI()

UPLOAD_DIR = os.environ.get("UPLOAD_DIR") or tempfile.gettempdir()


def process(path: str, name: str, log_path: str = "log.txt") -> None:
    """The slow part: read the whole file, record its digest, remove it."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as data:
            for chunk in iter(lambda: data.read(1024 * 1024), b""):
                digest.update(chunk)
        with open(log_path, "a") as log:
            log.write(f"{name}: sha256 {digest.hexdigest()}\n")
    finally:
        os.remove(path)


def keep(upload: UploadFile) -> str:
    handle, path = tempfile.mkstemp(dir=UPLOAD_DIR, prefix="upload-")
    with os.fdopen(handle, "wb") as out:
        shutil.copyfileobj(upload.file, out)
    return path


@app.post("/uploads", status_code=202)
async def upload(file: UploadFile, background_tasks: BackgroundTasks) -> dict[str, str | None]:
    path = await trio.to_thread.run_sync(keep, file)
    background_tasks.add_task(process, path, file.filename or "upload")
    return {"status": "accepted", "filename": file.filename}
