"""trioapi with the seed's task made durable on Redis Streams: committed before each response.

The same routes as ``app_trioapi_durable.py``, on the store named by
``BENCH_REDIS_URL`` (``bench/run.py`` starts a ``redis-server`` for the run
on 127.0.0.1, without persistence, and passes its URL). The keys' prefix
is the server process's pid, so that no two rounds share a stream.
"""

import os

from _task import write_notification

from trioapi import BackgroundTasks, TrioAPI

app = TrioAPI(task_store=f"{os.environ['BENCH_REDIS_URL']}?prefix=bench-{os.getpid()}")
notify = app.durable_task(write_notification, name="bench.write_notification", retries=0)


@app.get("/")
async def root():
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(notify, email)
    return {"message": "Notification sent in the background"}
