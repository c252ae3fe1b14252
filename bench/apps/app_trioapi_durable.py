"""trioapi with the seed's task made durable: committed to SQLite before each response.

The same routes as ``app_trioapi.py``; the POST's task is ``write_notification``
as a durable task, so every 2xx first waits for its group commit. The store
file sits next to the benchmark log (``BENCH_LOG``), or in the temporary
directory.
"""

import os
import tempfile

from _task import LOG_PATH, write_notification

from trioapi import BackgroundTasks, TrioAPI

_where = os.path.dirname(LOG_PATH) if os.devnull != LOG_PATH else tempfile.gettempdir()
STORE = os.path.join(_where, f"bench-durable-{os.getpid()}.db")

app = TrioAPI(task_store=f"sqlite:///{STORE}")
notify = app.durable_task(write_notification, name="bench.write_notification", retries=0)


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(notify, email)
    return {"message": "Notification sent in the background"}
