"""The application: an ASGI 3 callable that routes, solves, responds, hands off.

One request, start to end (``TrioAPI._run``):

1. look the route up in the precomputed table (404/405 without touching the body),
   on the path within the app; a path no route has, under a mount, goes to the
   mounted app (``_http/mounts.py``);
2. solve the route's dependencies and parameters; any conversion error → 422;
3. call the endpoint (async inline, sync in a worker thread) and build the
   response (a generator's is a stream of its items, ``_http/streams.py``);
   an exception goes to the matching exception handler;
4. send the response (its final message shielded, see ``_responses``);
5. run yield-dependency teardown, newest first;
6. hand the request's background tasks to the runtime as one group, or skip
   them when the endpoint raised. Step 6 runs in a ``finally``: a cancelled
   request call cannot lose tasks whose response already went out.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, ParamSpec, TypeVar, final, overload
from urllib.parse import unquote

from .._exceptions import (
    BackgroundCapacityError,
    BackgroundClosedError,
    HTTPException,
    MalformedRequestError,
    RequestValidationError,
    ResponseValidationError,
    RouteDefinitionError,
    TaskStoreError,
    TrioAPIError,
    ValidationException,
    endpoint_context,
)
from .._runtime.background import (
    UNWIND_GRACE,
    BackgroundRuntime,
    BackgroundTasks,
    RuntimeState,
    TaskHandle,
    adopt_background,
)
from .._runtime.durable import DurableTask
from .._server.connections import watch_accept
from .._server.hypercorn import find_config, hypercorn_version, install_guard, sends_whole_bodies
from .._stores.base import TaskStore
from ..middleware._stack import INNERMOST, ASGIApp, Middleware, MiddlewareFactory, MiddlewareOptions
from ..telemetry._api import TELEMETRY_RECORD, TelemetryConfig, resolve_config
from .datastructures import State
from .jsonmem import DEFAULT_MAX_JSON_MEMORY
from .lifespan import handle_lifespan
from .mounts import absolute_url, call_mounted, find_mount, route_path, strip_root
from .params import CallKind, Depends
from .requests import (
    DEFAULT_BODY_MIN_RATE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    ClientDisconnect,
    Receive,
    Request,
    Scope,
    Send,
)
from .responses import (
    TRANSPORT_GONE,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    _no_body,
)
from .routing import (
    APIRoute,
    APIRouter,
    APIWebSocketRoute,
    Found,
    MethodNotAllowed,
    RouteTable,
    check_body_limit,
)
from .solve import (
    RequestContext,
    call,
    request_has_body,
    solve_route,
    teardown,
    teardown_interrupted,
)
from .streams import prepare_stream

_NO_LIMIT = sys.maxsize  # max_body_size=None: no limit on request bodies

logger = logging.getLogger("trioapi")
error_logger = logging.getLogger("trioapi.error")

E = TypeVar("E", bound=BaseException)
P = ParamSpec("P")
R = TypeVar("R")
ExceptionHandler = Callable[[Request, Any], Any]
Lifespan = Callable[["TrioAPI"], AbstractAsyncContextManager[Any]]

DRAIN_TIMEOUT_ENV = "TRIOAPI_DRAIN_TIMEOUT"
BODY_TIMEOUT_ENV = "TRIOAPI_BODY_TIMEOUT"
BODY_MIN_RATE_ENV = "TRIOAPI_BODY_MIN_RATE"


async def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    """The default answer to an ``HTTPException``: ``{"detail": ...}`` with its status.

    Statuses that carry no body (1xx, 204, 304) get none, as in FastAPI.
    """
    if _no_body(exc.status_code):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def request_validation_exception_handler(
    request: Request, exc: RequestValidationError
) -> Response:
    """The default answer to a ``RequestValidationError``: 422 with FastAPI's ``detail`` list."""
    from ..encoders import jsonable_encoder

    return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def _malformed_handler(request: Request, exc: MalformedRequestError) -> Response:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_hint)


async def _unavailable_handler(
    request: Request, exc: BackgroundCapacityError | BackgroundClosedError | TaskStoreError
) -> Response:
    if isinstance(exc, TaskStoreError):
        logger.error("%s %s answered 503: %s", request.method, request.path, exc)
    return JSONResponse(
        {"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)}
    )


async def _disconnect_handler(request: Request, exc: ClientDisconnect) -> Response:
    # The client left mid-body: nobody will read this answer (the server drops
    # it), and it is not an error of ours. The request's tasks are skipped.
    logger.debug("the client left before sending all of %s %s", request.method, request.path)
    return Response(b"", status_code=400)


async def _framework_error_handler(request: Request, exc: TrioAPIError) -> Response:
    if exc.status_hint >= 500:
        return _server_error()
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_hint)


_ROUTE_CONTEXT = "trioapi.route_context"
"""Where a request's (app, context, telemetry record) wait for ``route_response``."""


async def route_response(route: APIRoute, request: Request) -> Response:
    """The default route handler (``APIRoute.get_route_handler()``): the route's answer.

    Runs inside the app's request, which set the request's context aside in
    its scope; ``request`` may be another object than the app's (a custom
    ``Request`` subclass wrapping the same scope and receive): body
    parameters are then read through it.
    """
    found = request.scope.get(_ROUTE_CONTEXT)
    if found is None:
        msg = "a route handler can only answer a request the app is serving"
        raise RuntimeError(msg)
    app, ctx, record = found
    if request is not ctx._request:
        ctx._request = request
    response: Response = await app._answer(route, ctx, record)
    return response


@final
class _TelemetryPending:
    """The OpenTelemetry layer of an app whose ``telemetry=`` is not decided yet.

    Met by the first request when no lifespan ran (a test client used
    without ``with``): it decides, then serves through what was decided.
    """

    __slots__ = ("_app",)

    pending = True
    websockets = True

    def __init__(self, app: TrioAPI) -> None:
        self._app = app

    async def _serve(self, call: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        app._decide_telemetry()
        telemetry = app._otel
        if telemetry is None or (scope["type"] == "websocket" and not telemetry.websockets):
            await call(scope, receive, send)
        else:
            await telemetry._serve(call, scope, receive, send)


def _server_error() -> Response:
    """The answer to an error that is the server's: plain text, and the error goes on.

    As in FastAPI, the app answers 500 and then re-raises the error to the
    server, which logs it (under plain hypercorn, where trioapi's own
    loggers are silent, too), and to a test client, which raises it in the
    test.
    """
    response = PlainTextResponse("Internal Server Error", status_code=500)
    response._unhandled = True
    return response


def _decode_path(raw: bytes) -> tuple[str, list[str]]:
    # The segments are kept apart for the route table: an encoded slash (%2F)
    # inside one is not a path separator (RouteTable.match tells the cases apart).
    text = raw.decode("latin-1")
    try:
        segments = [unquote(part, errors="strict") for part in text[1:].split("/")]
    except UnicodeDecodeError:
        msg = "the request path is not valid UTF-8 once percent-decoded"
        raise MalformedRequestError(msg) from None
    return "/" + "/".join(segments), segments


class TrioAPI(APIRouter):
    """A trioapi application: FastAPI's ergonomics, served on trio.

    Args:
        drain_timeout: Seconds that shutdown waits for background tasks before
            cancelling what is left (25 s fits a 30 s orchestrator grace period
            after hypercorn's 3 s ``graceful_timeout``).
        max_pending_tasks: Admitted background tasks not yet started; beyond
            it ``add_task`` fails and the request gets 503 with ``Retry-After``.
        max_running_tasks: Background tasks running at once.
        max_task_threads: Worker threads for sync background tasks.
        task_store: Where durable tasks (``@app.durable_task``) are kept until
            done: ``"sqlite:///tasks.db"`` (an embedded journal),
            ``"redis://host:6379/0"`` (several machines), or a store object
            from ``trioapi.stores``. ``TRIOAPI_TASK_STORE`` in the
            environment overrides it. See ``docs/durable.md``.
        loop_watchdog: Seconds the event loop may be held by blocking code
            (``time.sleep`` in an ``async def``) before a WARNING names the
            code with its stack; None turns the watchdog off.
        lifespan: ``lifespan(app)`` returning an async context manager, entered
            at startup and left at shutdown (after the background drain).
        on_startup, on_shutdown: Hooks (sync or async) run at startup and at
            shutdown (shutdown hooks run after the background drain).
        dependencies: Solved before every path operation.
        exception_handlers: ``{ExceptionType or status code: handler}``.
        default_response_class: How plain return values are rendered.
        max_body_size: Request bodies larger than this get 413 (per router
            and route: ``max_body_size=`` on them; a route's None inherits).
            None here: no limit, as in FastAPI; 0: only empty bodies.
        body_timeout: Seconds a request body may stop arriving while the app
            reads it before the request gets 408 (None: no limit). Only waits
            for body bytes are timed, never a slow endpoint.
        max_json_memory: A JSON body whose decoded objects would take more
            memory than this (an estimate made before decoding, see
            ``docs/reliability.md``) gets 413 (per router or route:
            ``max_json_memory=``, ``math.inf`` lifting it there; None: no limit).
        body_min_rate: Bytes per second a request body must average once
            ``body_timeout`` has passed since the app began reading it; the
            deadline moves one second later for every ``body_min_rate``
            bytes received (default 1024; None: only silence is timed).
        redirect_slashes: Redirect ``/items/`` to ``/items`` (and back) with
            307 when only the other one exists.
        title, version, summary, description: Describe the API.
        dependency_overrides: (an attribute) replacements for dependencies.
        docs_assets: Where the ``/docs`` and ``/redoc`` pages load their
            JavaScript and CSS from: ``"bundled"`` (the copies inside
            trioapi, served by the app: works offline) or ``"cdn"``.
        telemetry: FastAPI 0.165's OpenTelemetry settings
            (:class:`trioapi.telemetry.TelemetryConfig`): with a provider
            given or configured globally, request and task spans, HTTP
            metrics and error logs (``docs/observability.md``).

    Every other keyword FastAPI's ``FastAPI`` takes (``openapi_url``,
    ``docs_url``, ``servers``, ``root_path``, ``responses``...) is accepted
    and kept for the OpenAPI document and the docs pages.
    """

    def __init__(
        self,
        *,
        drain_timeout: float = 25.0,
        max_pending_tasks: int = 10_000,
        max_running_tasks: int = 1_000,
        max_task_threads: int = 40,
        task_store: TaskStore | str | None = None,
        loop_watchdog: float | None = 0.5,
        lifespan: Lifespan | None = None,
        on_startup: Sequence[Callable[[], Any]] | None = None,
        on_shutdown: Sequence[Callable[[], Any]] | None = None,
        dependencies: Sequence[Depends] | None = None,
        exception_handlers: Mapping[type[BaseException] | int, ExceptionHandler] | None = None,
        default_response_class: type[Response] = JSONResponse,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        body_min_rate: float | None = DEFAULT_BODY_MIN_RATE,
        redirect_slashes: bool = True,
        title: str = "TrioAPI",
        version: str = "0.1.0",
        summary: str | None = None,
        description: str = "",
        debug: bool = False,
        routes: Sequence[Any] | None = None,
        openapi_url: str | None = "/openapi.json",
        openapi_tags: list[dict[str, Any]] | None = None,
        servers: list[dict[str, Any]] | None = None,
        docs_url: str | None = "/docs",
        redoc_url: str | None = "/redoc",
        swagger_ui_oauth2_redirect_url: str | None = "/docs/oauth2-redirect",
        swagger_ui_init_oauth: dict[str, Any] | None = None,
        swagger_ui_parameters: dict[str, Any] | None = None,
        middleware: Sequence[Any] | None = None,
        terms_of_service: str | None = None,
        contact: dict[str, Any] | None = None,
        license_info: dict[str, Any] | None = None,
        root_path: str = "",
        root_path_in_servers: bool = True,
        responses: Mapping[int | str, Any] | None = None,
        callbacks: Sequence[Any] | None = None,
        webhooks: Any = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Callable[[Any], str] | None = None,
        separate_input_output_schemas: bool = True,
        openapi_external_docs: dict[str, Any] | None = None,
        strict_content_type: bool | None = None,
        form_limits: Any = None,
        max_json_memory: float | None = DEFAULT_MAX_JSON_MEMORY,
        telemetry: TelemetryConfig | Mapping[str, Any] | None = None,
        docs_assets: Literal["bundled", "cdn"] = "bundled",
        **extra: Any,
    ) -> None:
        super().__init__(
            dependencies=dependencies,
            responses=responses,
            callbacks=callbacks,
            deprecated=deprecated,
            include_in_schema=include_in_schema,
            generate_unique_id_function=generate_unique_id_function,
            strict_content_type=strict_content_type,
            form_limits=form_limits,
            max_json_memory=max_json_memory,
        )
        self.title = title
        self.version = version
        self.summary = summary
        self.description = description
        self.debug = debug
        self.openapi_url = openapi_url
        self.openapi_tags = openapi_tags
        self.servers = servers or []
        self.docs_url = docs_url
        self.redoc_url = redoc_url
        self.swagger_ui_oauth2_redirect_url = swagger_ui_oauth2_redirect_url
        self.swagger_ui_init_oauth = swagger_ui_init_oauth
        self.swagger_ui_parameters = swagger_ui_parameters
        self.user_middleware = list(middleware or [])
        self.terms_of_service = terms_of_service
        self.contact = contact
        self.license_info = license_info
        self.root_path = root_path
        self.root_path_in_servers = root_path_in_servers
        self.webhooks = webhooks if webhooks is not None else _webhook_router()
        self.separate_input_output_schemas = separate_input_output_schemas
        self.openapi_external_docs = openapi_external_docs
        self.docs_assets = docs_assets
        self.extra = extra
        self.dependency_overrides: dict[Callable[..., Any], Callable[..., Any]] = {}
        """Replacements for dependencies, as in FastAPI: ``{original: replacement}``.

        Looked up on every request, so tests can set and clear it at any time;
        an empty dict costs nothing.
        """
        self.openapi_schema: dict[str, Any] | None = None
        self.background = BackgroundRuntime(
            drain_timeout=drain_timeout,
            max_pending=max_pending_tasks,
            max_running=max_running_tasks,
            max_threads=max_task_threads,
            store=task_store,
            loop_watchdog=loop_watchdog,
        )
        self.lifespan_context = lifespan
        self.on_startup: list[Callable[[], Any]] = list(on_startup or ())
        self.on_shutdown: list[Callable[[], Any]] = list(on_shutdown or ())
        self.default_response_class = default_response_class
        self.max_body_size = check_body_limit(max_body_size)
        self.body_timeout = body_timeout
        if body_min_rate is not None and not body_min_rate >= 0:
            msg = f"body_min_rate must be >= 0 bytes per second or None, not {body_min_rate!r}"
            raise ValueError(msg)
        self.body_min_rate = body_min_rate or None
        if max_json_memory is not None and not max_json_memory > 0:
            msg = f"max_json_memory must be > 0 bytes or None, not {max_json_memory!r}"
            raise ValueError(msg)
        self.redirect_slashes = redirect_slashes
        self.state = State()
        self._telemetry = resolve_config(telemetry)
        # Whether it is on is decided once, at startup or the first request
        # (_decide_telemetry); until then this stands in for the layer.
        self._otel = _TelemetryPending(self)
        # TrioAPI.__call__ itself, as the stack's bottom calls it: a subclass's
        # override already ran on the way in.
        self._traced_call = functools.partial(TrioAPI.__call__, self)
        self._table = RouteTable()
        self._websocket_table = RouteTable()
        # Set at each startup: served by a hypercorn whose send path was
        # checked? Then a request whose send is hypercorn's own, on HTTP/1,
        # needs no cancel scope around its final send (``_hypercorn``).
        self._checked_hypercorn = False
        self._handlers: dict[type[BaseException] | int, ExceptionHandler] = {
            HTTPException: http_exception_handler,
            RequestValidationError: request_validation_exception_handler,
            MalformedRequestError: _malformed_handler,
            BackgroundCapacityError: _unavailable_handler,
            BackgroundClosedError: _unavailable_handler,
            TaskStoreError: _unavailable_handler,
            TrioAPIError: _framework_error_handler,
            ClientDisconnect: _disconnect_handler,
        }
        for key, handler in (exception_handlers or {}).items():
            self.add_exception_handler(key, handler)
        if routes:  # here, not in APIRouter's __init__: the route tables exist now
            self._adopt_routes(routes)
        self._add_docs_routes()

    @property
    def drain_timeout(self) -> float:
        """Seconds shutdown waits for background tasks (see ``TrioAPI``)."""
        return self.background.drain_timeout

    @overload
    def durable_task(self, func: Callable[P, R], /) -> DurableTask[P, R]: ...

    @overload
    def durable_task(
        self,
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        jitter: float = 0.1,
        timeout: float | None = None,
    ) -> Callable[[Callable[P, R]], DurableTask[P, R]]: ...

    def durable_task(  # type: ignore[misc]  # mypy and a ParamSpec only in the result
        self,
        func: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
        jitter: float = 0.1,
        timeout: float | None = None,
    ) -> DurableTask[P, R] | Callable[[Callable[P, R]], DurableTask[P, R]]:
        """Makes a function a durable task: ``add_task`` then stores its calls until done.

        Bare (``@app.durable_task``) or with options. The call is committed to
        the app's ``task_store`` before the response is sent and runs at
        least once, here or, after a crash, in the next process on the same
        store; a failure is retried ``retries`` times after
        ``backoff * 2 ** (failures - 1)`` seconds (plus up to ``jitter`` of
        that), then dead-lettered. Inside it, :func:`trioapi.current_task`
        gives its stable id and attempt number.

        Args:
            name: What it is stored under (default ``module:qualname``); any
                process that imported the app finds it by this name.
            retries: Attempts after the first that failures may use.
            backoff: Seconds before the first retry (doubling after each).
            max_backoff: The longest wait between attempts.
            jitter: Up to this fraction of the wait is added at random.
            timeout: Seconds one attempt may run; past it, it counts as failed.
        """

        def register(target: Callable[P, R]) -> DurableTask[P, R]:
            task = DurableTask(
                target,
                name=name,
                retries=retries,
                backoff=backoff,
                max_backoff=max_backoff,
                jitter=jitter,
                timeout=timeout,
            )
            self.background.durable.add(task)
            return task

        return register if func is None else register(func)

    def instrument(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> Any:
        """Turns on OpenTelemetry traces and metrics (``pip install 'trioapi[otel]'``).

        A SERVER span per request, ended at its last byte; a span per
        background task (CONSUMER spans per attempt for durable tasks, in the
        trace of the request that committed them); HTTP and task metrics. See
        ``docs/observability.md``. Call it before the app starts; its layer
        is outermost, around any middleware added before or after.

        Args:
            tracer_provider, meter_provider: The SDK's providers; the global
                ones by default.

        Returns:
            The ``Telemetry`` object recording them.
        """
        from .._observability.otel import Telemetry

        if self.middleware_stack is not None or self.background.state is not RuntimeState.IDLE:
            msg = "Cannot instrument an application that has started: call instrument() first"
            raise RuntimeError(msg)
        telemetry = Telemetry(self, tracer_provider, meter_provider)
        # Outermost, around any middleware (build_stack puts it there); with
        # none, __call__ enters it directly, without the stack's two layers.
        # It replaces what telemetry= would have decided (one layer per app).
        self._otel = telemetry
        self.background._tracing = telemetry
        self.background.observe(telemetry)
        return telemetry

    def add_metrics_route(
        self,
        path: str = "/metrics",
        *,
        dependencies: Sequence[Depends] | None = None,
        include_in_schema: bool = False,
    ) -> Any:
        """Serves the background runtime's Prometheus metrics at ``path``.

        Needs ``pip install 'trioapi[prometheus]'``. ``dependencies`` guard the
        route like any other (an API key, a network check); the metrics are
        listed in ``docs/observability.md``.

        Returns:
            The ``PrometheusMetrics`` collecting them (``.registry`` is its
            prometheus-client registry).
        """
        from .._observability.prometheus import PrometheusMetrics

        metrics = getattr(self, "_prometheus", None)
        if metrics is None:
            metrics = PrometheusMetrics(self.background)
            self.background.observe(metrics)
            self._prometheus = metrics

        async def metrics_endpoint() -> Response:
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)

        self.add_api_route(
            path,
            metrics_endpoint,
            methods=["GET"],
            dependencies=dependencies,
            include_in_schema=include_in_schema,
            name="metrics",
        )
        return metrics

    def add_tasks_page(
        self,
        path: str = "/tasks",
        *,
        dependencies: Sequence[Depends] | None = None,
        public: bool = False,
    ) -> Any:
        """Serves a live page of the background tasks at ``path``.

        It shows the runtime's state and drain report, its counters, the
        tasks pending and running, the ones that recently failed or were cut
        off, and for durable tasks the task store's counts and dead letters
        with a button that queues one again. It is plain HTML with its script
        inline, reading ``{path}/state.json`` every second; the dead letters'
        retry route is ``POST {path}/dead/{task_id}/retry``. See
        ``docs/observability.md``.

        Args:
            path: Where the page is served.
            dependencies: Guard all three routes, like any route's: the page
                shows task names, requests and errors, and can rerun tasks.
                The page's own requests carry only what a browser sends by
                itself, so use a guard it satisfies: a session cookie, HTTP
                Basic, the client's address.
            public: Serve it without a guard (local development only).

        Returns:
            The ``TasksPage`` (``trioapi._observability.tasks_page``) that
            observes the runtime; ``await page.snapshot()`` is ``state.json``.

        Raises:
            ValueError: Neither ``dependencies`` nor ``public=True`` was given,
                or ``path`` does not start with ``/``.
        """
        if not dependencies and not public:
            msg = (
                "the tasks page shows task names, requests and errors and can rerun tasks, "
                "so it is never public by default: pass dependencies=[Depends(your_auth_check)] "
                "(or public=True for local development)"
            )
            raise ValueError(msg)
        if not path.startswith("/"):
            msg = f"the tasks page's path must start with '/', not {path!r}"
            raise ValueError(msg)
        from .._observability.tasks_page import TasksPage

        page = getattr(self, "_tasks_page", None)
        if page is None:
            page = TasksPage(self.background)
            self.background.observe(page)
            self._tasks_page = page
        page.add_routes(self, path, list(dependencies or ()))
        return page

    # --- registration -------------------------------------------------------------

    def _register(self, route: APIRoute) -> None:
        if not route.path:
            msg = (
                f"Prefix and path cannot be both empty (path operation: "
                f"{getattr(route.endpoint, '__name__', route.endpoint)!r})"
            )
            raise RouteDefinitionError(msg)
        if route.unservable is not None:
            raise RouteDefinitionError(route.unservable)
        route.prepare()
        assert route.dependant is not None
        if route.dependant.kind in (CallKind.ASYNC_GEN, CallKind.SYNC_GEN):
            # Its items are streamed (JSON lines, server-sent events): _http/streams.py.
            prepare_stream(route, self.default_response_class)
        super()._register(route)
        self._table.add(route)

    def _register_websocket(self, route: APIWebSocketRoute) -> None:
        route.prepare()
        super()._register_websocket(route)
        self._websocket_table.add(route)  # type: ignore[arg-type]

    def add_exception_handler(
        self, key: type[BaseException] | int, handler: ExceptionHandler
    ) -> None:
        """Routes exceptions of type ``key`` (or HTTP errors with status ``key``) to ``handler``.

        ``handler(request, exc)`` (sync or async) returns the ``Response``.
        """
        self._handlers[key] = handler

    def exception_handler(self, key: type[BaseException] | int) -> Callable[[Any], Any]:
        """Decorator form of :meth:`add_exception_handler`."""

        def decorator(handler: Any) -> Any:
            self.add_exception_handler(key, handler)
            return handler

        return decorator

    @property
    def router(self) -> APIRouter:
        """The app's own router (FastAPI's ``app.router``): the app itself."""
        return self

    # --- the OpenAPI document and the docs pages (trioapi/_openapi) ----------------------

    openapi_version: str = "3.1.0"
    """The OpenAPI version the document declares."""

    _openapi_built_for: Any = None
    # What the cached document was built from (the routes then): see _openapi/serving.py.

    docs_assets: str = "bundled"
    """Where ``/docs`` and ``/redoc`` load their JavaScript and CSS from: ``"bundled"``
    (served by the app from the copies inside trioapi, so the pages work
    offline) or ``"cdn"`` (FastAPI's jsDelivr URLs): ``TrioAPI(docs_assets="cdn")``.
    """

    def openapi(self) -> dict[str, Any]:
        """Returns the app's OpenAPI document (built on first use, kept in ``openapi_schema``).

        Override it, or store a document of your own in ``app.openapi_schema``,
        to customise what ``openapi_url`` serves; routes added after the
        first call make the next one build the document again.
        """
        from .._openapi.serving import document_of

        return document_of(self)

    def _add_docs_routes(self) -> None:
        # Ordinary routes, left out of the document, as FastAPI registers them.
        from .._openapi.serving import add_docs_routes

        add_docs_routes(self)

    # --- middleware (trioapi/middleware) ---------------------------------------------

    middleware_stack: ASGIApp | None = None
    """The middleware around the app, built from ``user_middleware`` on the first call."""

    _otel: Any = None
    """The OpenTelemetry layer, outermost (see ``__call__``): ``app.instrument()``'s
    ``Telemetry``, ``telemetry=``'s ``ConfiguredTelemetry``, ``_TelemetryPending``
    until startup decided, or None."""

    _observing = False
    """``telemetry=`` is on: ``_run`` looks for the request's record (operation spans, data)."""

    def _decide_telemetry(self) -> None:
        """Whether ``telemetry=`` records anything, decided once: at startup or the first request.

        FastAPI asks on every request whether a provider is configured;
        trioapi asks once, so an app without one pays nothing per request.
        """
        if type(self._otel) is not _TelemetryPending:
            return
        self._otel = None
        from ..telemetry._api import wants_telemetry

        if not wants_telemetry(self._telemetry):
            return
        from .._observability.native import ConfiguredTelemetry

        telemetry = ConfiguredTelemetry(self, self._telemetry)
        self._otel = telemetry
        self._observing = True
        self.background._tracing = telemetry
        self.background.observe(telemetry)
        stack = self.middleware_stack
        if stack is not None:
            # Built before the decision (at the lifespan call): its layer goes
            # in at the top all the same, under the error layer (build_stack).
            stack.app = telemetry.middleware(stack.app)  # type: ignore[attr-defined]

    def add_middleware(
        self,
        middleware_class: MiddlewareFactory[MiddlewareOptions],
        *args: MiddlewareOptions.args,
        **kwargs: MiddlewareOptions.kwargs,
    ) -> None:
        """Wraps the app in ``middleware_class(app, *args, **kwargs)``: the last added is outermost.

        Args:
            middleware_class: An ASGI middleware (``CORSMiddleware``...): called
                with the ASGI app it wraps, then its options, it returns one.
            *args: Options passed on after the wrapped app.
            **kwargs: Options passed on as keywords.

        Raises:
            RuntimeError: The app has started (its lifespan, or a request
                through its middleware): the stack is already built.
        """
        if self.middleware_stack is not None or self.background.state is not RuntimeState.IDLE:
            msg = (
                "Cannot add middleware after an application has started: add it before "
                "the lifespan startup and the first request"
            )
            raise RuntimeError(msg)
        self.user_middleware.insert(0, Middleware(middleware_class, *args, **kwargs))

    def middleware(self, middleware_type: str) -> Callable[[Any], Any]:
        """Decorator: ``@app.middleware("http")`` on ``async def mw(request, call_next)``.

        ``call_next(request)`` returns the app's response, whose status and
        headers the function may change before returning it (or it returns
        another response). See ``trioapi.middleware.base``.

        Raises:
            ValueError: A type other than ``"http"``.
        """
        if middleware_type != "http":
            msg = f"unknown middleware type {middleware_type!r}: only middleware('http') exists"
            raise ValueError(msg)

        def decorator(func: Any) -> Any:
            from ..middleware.base import BaseHTTPMiddleware

            self.add_middleware(BaseHTTPMiddleware, dispatch=func)
            return func

        return decorator

    def build_middleware_stack(self) -> ASGIApp:
        """Builds the middleware stack around the app (done on the first call)."""
        from ..middleware._stack import build_stack

        return build_stack(self)

    def _build_stack(self, kind: str) -> ASGIApp:
        if kind != "lifespan":
            # A request first: the telemetry layer must be known to be built in.
            self._decide_telemetry()
        stack = self.middleware_stack = self.build_middleware_stack()
        return stack

    # --- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The HTTP path is written out here rather than in a method of its
        # own: every time the request's task resumes (about ten times per
        # request under hypercorn) it passes through each coroutine frame
        # between the server and the endpoint, so each frame costs per request.
        if self.root_path:
            scope["root_path"] = self.root_path  # TrioAPI(root_path=...), as FastAPI sets it
        if (self.user_middleware or self._otel) and scope.get(INNERMOST) is not self:
            if self.user_middleware:
                # Into the middleware stack, at whose bottom it calls us again (_stack.py).
                stack = self.middleware_stack or self._build_stack(scope["type"])
                await stack(scope, receive, send)
                return
            if scope["type"] == "http" or (scope["type"] == "websocket" and self._otel.websockets):
                # Traced, no middleware: the request's span around our own call.
                scope[INNERMOST] = self
                await self._otel._serve(self._traced_call, scope, receive, send)
                return
        kind = scope["type"]
        if kind != "http":
            await self._other(kind, scope, receive, send)
            return
        scope["app"] = self
        method: str = scope["method"]
        path: str = scope["path"]
        raw: bytes | None = scope.get("raw_path")
        root = scope.get("root_path")
        if root:
            # Route on the path within the app (mounts.py: the two conventions).
            path, raw = strip_root(root, path, raw)
        segments: list[str] | None = None
        if raw is not None and b"%" in raw:
            try:
                path, segments = _decode_path(raw)
            except MalformedRequestError as error:
                await self._send_error(error, scope, receive, send)
                return
        found = self._table.match(method, path, segments)
        if type(found) is Found:
            scope["route"] = found.route  # as Starlette's router does (tracing reads it)
            await self._run(found.route, found.params, scope, receive, send)
        elif type(found) is MethodNotAllowed:
            headers = {"Allow": ", ".join(found.allowed)}
            await self._send_error(HTTPException(405, headers=headers), scope, receive, send)
        else:
            await self._not_found(method, path, scope, receive, send)

    async def _other(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        if kind == "lifespan":
            from ..telemetry._runtime import lifespan

            await lifespan(
                config=self._telemetry,
                app=functools.partial(handle_lifespan, self),
                scope=scope,
                receive=receive,
                send=send,
                started=self._decide_telemetry,
            )
        elif kind == "websocket":
            scope["app"] = self
            path = route_path(scope)
            found = self._websocket_table.match("WEBSOCKET", path)
            mount = find_mount(self.mounts, path) if type(found) is not Found else None
            if type(found) is Found:
                from .websockets import run_websocket

                route: Any = found.route
                await run_websocket(self, route, found.params, scope, receive, send)
            elif mount is not None:
                await mount.app(mount.child_scope(scope, path, self), receive, send)
            else:
                await send({"type": "websocket.close", "code": 1000})
        else:
            msg = f"trioapi does not serve ASGI {kind!r} connections"
            raise RuntimeError(msg)

    async def _not_found(
        self, method: str, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        mounts = self.mounts
        if mounts:
            mount = find_mount(mounts, path)
            if mount is not None:
                await call_mounted(self, mount, path, scope, receive, send)
                return
        if self.redirect_slashes and path != "/":
            other = path[:-1] if path.endswith("/") else path + "/"
            if type(self._table.match(method, other)) is Found or (
                mounts and find_mount(mounts, other) is not None
            ):
                raw = scope.get("raw_path") or path.encode()
                location = (raw[:-1] if raw.endswith(b"/") else raw + b"/").decode("latin-1")
                query = scope.get("query_string", b"")
                if query:
                    location += "?" + query.decode("latin-1")
                # Absolute, from the request's own scheme and host (Starlette's redirect).
                response = RedirectResponse(absolute_url(scope, location))
                await self._deliver(response, scope, send)
                return
        await self._send_error(HTTPException(404), scope, receive, send)

    async def _send_error(
        self, error: Exception, scope: Scope, receive: Receive, send: Send
    ) -> None:
        response = await self._error_response(error, scope, receive, None)
        if response.background is None:
            await self._deliver(response, scope, send)
            return
        # A handler's Response(background=...): its tasks run once it is sent.
        group = BackgroundTasks(self.background, f"{scope['method']} {scope['path']}")
        adopt_background(group, response.background)
        sent = False
        try:
            sent = await self._deliver(response, scope, send, shield=True)
        finally:
            await self._settle(group._take(), sent, scope)

    async def _run(
        self, route: APIRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        dependant = route.dependant
        assert dependant is not None
        ctx: RequestContext | None = None
        error: Exception | None = None
        # telemetry= observes this request: its record (operation spans, data).
        record = scope.get(TELEMETRY_RECORD) if self._observing else None
        try:
            if (
                record is None
                and dependant.is_plain
                and not route.extra
                and not self.dependency_overrides
                and route.handler is None
            ):
                response = self._to_response(await call(dependant, {}), route, None)
            else:
                ctx = self._context(route, params, scope, receive)
                if route.handler is None:
                    response = await self._answer(route, ctx, record)
                else:
                    # A route class's get_route_handler() wraps the answer; the
                    # default part of it (route_response) finds ctx here.
                    scope[_ROUTE_CONTEXT] = (self, ctx, record)
                    response = await route.handler(ctx.request)
                    if not isinstance(response, Response):
                        msg = (
                            f"the route handler of {route.path!r} ({type(route).__name__}"
                            f".get_route_handler) returned {response!r}, not a Response"
                        )
                        raise TypeError(msg)
            if response.background is not None:
                ctx = self._adopt_background(response, ctx, route, params, scope, receive)
            if ctx is not None and ctx._background is not None and ctx._background._durable:
                # Stored before the answer goes out: a 2xx means they will run.
                await self.background.commit(ctx._background._handles)
        except Exception as exc:
            error = exc
            if record is not None and isinstance(exc, RequestValidationError):
                record.validation_failed(exc, exc.body)
            if ctx is not None:
                # The endpoint raised: its tasks do not run (FastAPI's rule).
                # Those the yield dependencies add while handling it still do.
                self.background.discard(ctx.take_background())
            if ctx is not None and ctx.exits:
                # FastAPI's order: the yield dependencies see the error before
                # any answer exists, and may turn it into another (an
                # HTTPException, say), which is then the one answered.
                error = await teardown(ctx, exc) or exc
            response = await self._error_response(error, scope, receive, ctx)
            if response.background is not None:
                # A handler's response: its durable tasks are committed after
                # it is sent, as those a teardown adds.
                ctx = self._adopt_background(response, ctx, route, params, scope, receive)
        except BaseException as interruption:
            if ctx is not None:
                self.background.discard(ctx.take_background())
                if ctx.exits:
                    await teardown_interrupted(ctx, interruption)
                if ctx.has_files():
                    await ctx.close_files()
            raise
        # A stream watches receive() for the client leaving, but only once
        # nothing of the body is left to read (the watch would eat it).
        watch: Receive | None = None
        if response._produces_body and (
            ctx.body_consumed() if ctx is not None else not request_has_body(scope)
        ):
            watch = receive
        if ctx is None or (ctx._background is None and not ctx.exits and not ctx.has_files()):
            # Nothing depends on how the response goes: just send it.
            await self._deliver(response, scope, send, receive=watch)
            self._reraise(error, response)
            return
        sent = False
        shield = ctx.wants_background
        try:
            sent = await self._deliver(
                response,
                scope,
                send,
                shield=shield,
                receive=watch,
                whole_body_sends=shield
                and self._checked_hypercorn
                and sends_whole_bodies(send, scope),
            )
        finally:
            await self._after_response(ctx, error, sent)
        self._reraise(error, response)

    def _context(
        self, route: APIRoute, params: dict[str, str], scope: Scope, receive: Receive
    ) -> RequestContext:
        limit = route.max_body_size if route.max_body_size is not None else self.max_body_size
        ctx = RequestContext(
            scope,
            receive,
            params,
            self.background,
            limit if limit is not None else _NO_LIMIT,
            self.body_timeout,
            self.body_min_rate,
            self.dependency_overrides,
        )
        if route.strict_content_type is False:
            ctx.strict_content_type = False
        return ctx

    def _adopt_background(
        self,
        response: Response,
        ctx: RequestContext | None,
        route: APIRoute,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
    ) -> RequestContext:
        """``Response(background=...)``: its tasks join the request's own (made if need be)."""
        if ctx is None:
            ctx = self._context(route, params, scope, receive)
        adopt_background(ctx.background, response.background)
        return ctx

    async def _answer(self, route: APIRoute, ctx: RequestContext, record: Any) -> Response:
        """Solves the parameters, calls the endpoint, ends the function-scoped
        dependencies, and makes the response (or raises what they raised)."""
        dependant = route.dependant
        assert dependant is not None
        if record is not None:
            result = await record.run(route, ctx)
        else:
            values, errors = await solve_route(route, ctx)
            if errors:
                raise RequestValidationError(errors, body=ctx._body_or_none())
            result = await call(dependant, values)
        if ctx.exits:
            replaced = await teardown(ctx, None, only_early=True)
            if replaced is not None:
                raise replaced
        if record is not None and route.stream is None and not isinstance(result, Response):
            with record.operation("serialization", dependant.call):
                return self._to_response(result, route, ctx)
        return self._to_response(result, route, ctx)

    def _reraise(self, error: Exception | None, response: Response) -> None:
        """An error no handler took goes on to the server, once answered (FastAPI's rule).

        The server logs it (hypercorn's "Error in ASGI Framework"), and a test
        client re-raises it in the test (``raise_server_exceptions``).
        """
        if error is not None and getattr(response, "_unhandled", False):
            raise error

    async def _deliver(
        self,
        response: Response,
        scope: Scope,
        send: Send,
        *,
        shield: bool = False,
        receive: Receive | None = None,
        whole_body_sends: bool = False,
    ) -> bool:
        """Sends ``response``; True once its final message was handed to the server.

        An error in a body produced while it is sent (a stream, a file) goes
        on to the server, as in FastAPI: the head is out, the response stays
        incomplete.
        """
        try:
            if response._produces_body:
                response._bind(scope)
            await response.send_to(
                send,
                head=scope["method"] == "HEAD",
                shield=shield,
                receive=receive,
                whole_body_sends=whole_body_sends,
            )
        except TRANSPORT_GONE:
            logger.debug(
                "the client left before the response to %s %s was complete",
                scope["method"],
                scope["path"],
            )
            return False
        except Exception:
            if response._produces_body:
                raise
            error_logger.exception(
                "error while sending the response to %s %s", scope["method"], scope["path"]
            )
            return False
        return True

    async def _after_response(
        self, ctx: RequestContext, error: BaseException | None, sent: bool
    ) -> None:
        before = ctx.take_background()
        failure: Exception | None = None
        try:
            if ctx.exits:
                failure = await teardown(ctx, None)
        finally:
            # Runs even when the request call is being cancelled: a response
            # that went out must not lose its tasks.
            await self._settle(before + ctx.take_background(), sent, ctx.scope)
            if ctx.has_files():
                await ctx.close_files()
        if failure is not None:
            # A yield dependency failed after the response (its tasks are
            # handed over): on to the server, which logs it (FastAPI's rule).
            raise failure

    async def _settle(self, group: list[TaskHandle[Any]], sent: bool, scope: Scope) -> None:
        # A response's tasks once it is over: handed to the runtime if the
        # response went out whole, dropped otherwise (FastAPI's rule).
        if not sent:
            self.background.discard(group)
        elif group:
            await self._hand_off(self.background, group, scope)

    async def _hand_off(
        self, runtime: BackgroundRuntime, group: list[TaskHandle[Any]], scope: Scope
    ) -> None:
        if runtime.state is RuntimeState.IDLE:
            await runtime.run_inline(group)
            return
        runtime.submit(group)
        extensions = scope.get("extensions")
        if extensions:
            observer = extensions.get("trioapi.background")
            if observer is not None:
                observer(group)

    def _to_response(self, result: Any, route: APIRoute, ctx: RequestContext | None) -> Response:
        if route.stream is not None:
            return route.stream(result, ctx)  # a generator's items, streamed
        sub = ctx.sub_response if ctx is not None else None
        if isinstance(result, Response):
            return result
        encoded: bytes | None = None
        if route.shape_json is not None:
            shaped = route.shape_json(result)
            if type(shaped) is bytes:
                encoded = shaped
            else:
                result = shaped  # JSON data pydantic could not write: the class encodes it
        elif route.shape_response is not None:
            result = route.shape_response(result)
        status = route.status_code
        if sub is not None and sub.status_code:
            status = sub.status_code
        if status is not None and _no_body(status):
            response = Response(b"", status_code=status)
        elif encoded is not None:
            status = 200 if status is None else status
            response = Response(encoded, status_code=status, media_type="application/json")
        else:
            response_class = route.response_class or self.default_response_class or JSONResponse
            # Without a status code of its own, the class's default applies
            # (307 for RedirectResponse), as in FastAPI.
            response = (
                response_class(result)
                if status is None
                else response_class(result, status_code=status)
            )
        if sub is not None and sub.raw_headers:
            response.raw_headers.extend(sub.raw_headers)
        return response

    def _find_handler(self, error: BaseException) -> ExceptionHandler | None:
        if isinstance(error, HTTPException):
            handler = self._handlers.get(error.status_code)
            if handler is not None:
                return handler
        for cls in type(error).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return None

    async def _error_response(
        self, error: Exception, scope: Scope, receive: Receive, ctx: RequestContext | None
    ) -> Response:
        handler = self._find_handler(error)
        request = ctx.request if ctx is not None else Request(scope, receive)
        if isinstance(error, ValidationException) and error.endpoint_ctx is None:
            route = scope.get("route")
            if route is not None:  # for its message: which endpoint, under which mount
                mount = (scope.get("root_path") or "").rstrip("/")
                error.endpoint_ctx = endpoint_context(
                    route.endpoint, scope["method"], mount + route.path
                )
        if handler is not None:
            try:
                response = handler(request, error)
                if inspect.isawaitable(response):
                    response = await response
            except Exception as failure:
                error_logger.exception(
                    "exception handler %r failed while handling %r", handler, error
                )
                record = scope.get(TELEMETRY_RECORD)
                if record is not None:
                    record.note(failure)  # unhandled now: the handler's own error
            else:
                if isinstance(response, Response):
                    return response
                error_logger.error(
                    "exception handler %r returned %r, not a Response", handler, response
                )
        else:
            record = scope.get(TELEMETRY_RECORD)
            if record is not None:
                record.note(error)  # before its 500 goes out: the span's error.type
            if isinstance(error, ResponseValidationError):
                error_logger.error(
                    "%s %s returned a value its response model does not accept: %s",
                    scope["method"],
                    scope["path"],
                    error,
                )
            return _server_error()
        return JSONResponse({"detail": "Internal Server Error"}, status_code=500)

    # --- the server around us ------------------------------------------------------

    def _check_server(self, scope: Scope) -> None:
        """Startup checks against the server running us (called in the lifespan)."""
        # For plain hypercorn, where no trioapi option reaches the app (docs/deploy.md).
        drain = _seconds_from_env(DRAIN_TIMEOUT_ENV)
        if drain is not None:
            self.background.drain_timeout = drain
        body = _seconds_from_env(BODY_TIMEOUT_ENV)
        if body is not None:
            self.body_timeout = body or None
        rate = _seconds_from_env(BODY_MIN_RATE_ENV, "a number of bytes per second")
        if rate is not None:
            self.body_min_rate = rate or None
        config = find_config()
        self._checked_hypercorn = False
        if config is None:
            return
        install_guard()
        watch_accept()  # plain hypercorn too: one WARNING, not a traceback per failed accept
        self._checked_hypercorn = hypercorn_version()[1]
        drain = self.background.drain_timeout
        shutdown_timeout = float(config.shutdown_timeout)
        graceful_timeout = float(config.graceful_timeout)
        if drain + UNWIND_GRACE >= shutdown_timeout:
            logger.warning(
                "trioapi: drain_timeout (%g s) does not fit hypercorn's shutdown_timeout "
                "(%g s): hypercorn stops waiting for the lifespan before the drain can end, "
                "and tasks still running then are lost. Raise shutdown_timeout above %g s "
                "or lower drain_timeout.",
                drain,
                shutdown_timeout,
                drain + UNWIND_GRACE,
            )
        else:
            logger.info(
                "trioapi: shutdown timeline: requests get hypercorn's graceful_timeout (%g s), "
                "then background tasks get drain_timeout (%g s) within shutdown_timeout (%g s)",
                graceful_timeout,
                drain,
                shutdown_timeout,
            )


def _webhook_router() -> APIRouter:
    from .._openapi.serving import WebhookRouter

    return WebhookRouter()


def _seconds_from_env(name: str, what: str = "a number of seconds") -> float | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        logger.warning("trioapi: ignoring %s=%r: not %s", name, value, what)
        return None
    return seconds
