"""trioapi with OpenTelemetry on: ``app.instrument()`` with the SDK's real providers.

The same ``GET /`` and POST (the seed's sync task through ``BackgroundTasks``)
as ``app_trioapi.py``. Every request gets its SERVER span, every task its
span, and the HTTP and task instruments record, as in production; only the
exporting is left out:

- traces: an SDK ``TracerProvider`` (default sampler: every request sampled)
  with a ``BatchSpanProcessor``, the processor a production app uses (spans
  are queued on the request's path and exported in batches by the SDK's
  thread), exporting to ``NoOpSpanExporter``, whose ``export()`` returns
  SUCCESS and does nothing but add the batch's length to a counter;
- metrics: an SDK ``MeterProvider`` with an ``InMemoryMetricReader``: every
  measurement is aggregated, as it is for any reader, but nothing is
  exported, and no periodic collection runs; the reader is read once, at
  shutdown.

At shutdown (after the background drain) the app flushes the providers and
prints one line, ``BENCH_OTEL {json}``: the spans exported, and the requests
and tasks the metrics counted. ``bench/run.py`` checks that every request and
every task had its span exported (none dropped by a full queue).
"""

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from _task import write_notification
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from trioapi import BackgroundTasks, TrioAPI


class NoOpSpanExporter(SpanExporter):
    """Exports nothing: SUCCESS for every batch, whose length it counts (once per batch)."""

    def __init__(self) -> None:
        self.spans = 0
        self.batches = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        self.batches += 1
        return SpanExportResult.SUCCESS


exporter = NoOpSpanExporter()
# shutdown_on_exit=False: the lifespan below shuts the providers down (after
# the drain, so the tasks' spans are in), not an atexit hook.
tracer_provider = TracerProvider(shutdown_on_exit=False)
tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
reader = InMemoryMetricReader()
meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)


def telemetry_report() -> dict[str, Any]:
    """What the providers saw: spans exported, and the requests and tasks metrics counted."""
    tracer_provider.force_flush()
    counts = {"http.server.request.duration": 0, "trioapi.background.tasks": 0}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name in counts:
                    for point in metric.data.data_points:
                        # A histogram's point has a count, a counter's a value.
                        counts[metric.name] += int(
                            point.count if hasattr(point, "count") else point.value
                        )
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return {
        "spans_exported": exporter.spans,
        "export_batches": exporter.batches,
        "requests": counts["http.server.request.duration"],
        "tasks": counts["trioapi.background.tasks"],
    }


@asynccontextmanager
async def lifespan(app: TrioAPI) -> AsyncIterator[None]:
    yield
    print("BENCH_OTEL " + json.dumps(telemetry_report()), flush=True)


app = TrioAPI(lifespan=lifespan)

# The routes of app_trioapi.py, unannotated like them: a return annotation
# would become a response model (as in FastAPI) and change what is measured.


@app.get("/")
async def root():  # type: ignore[no-untyped-def]
    return {"message": "hello"}


@app.post("/send-notification/{email}")
async def send_notification(email: str, background_tasks: BackgroundTasks):  # type: ignore[no-untyped-def]
    background_tasks.add_task(write_notification, email)
    return {"message": "Notification sent in the background"}


app.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
