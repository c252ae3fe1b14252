"""Routes, routers and the route table (no I/O).

Path templates are parsed once into segments. The table keeps two indexes:
a dict from full path to methods for templates without parameters (most
lookups end there, in one dict probe), and a segment trie for the rest,
where at each level a literal segment is tried before a ``{param}``, and a
``{name:path}`` catch-all last. Registration order only breaks ties between
identical templates (the first wins, as in FastAPI); ``/users/me`` beats
``/users/{id}`` wherever either was declared.

A lookup returns the route and the raw (still string) path parameters, or
says why not: no such path (404), or the path exists for other methods (405,
with the methods for the ``Allow`` header). ``HEAD`` is answered by ``GET``
routes unless a route declares ``HEAD`` itself.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
import re
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast, final

import attrs

from .._exceptions import RouteDefinitionError
from .forms import check_form_limits, merge_form_limits
from .mounts import Mount, URLPath, url_path_for

if TYPE_CHECKING:
    from .params import Dependant, Depends, SubDependency
    from .responses import Response
    from .streams import StreamPlan

F = TypeVar("F", bound=Callable[..., Any])

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}$")
_PATH_CONVERTERS = frozenset({"str", "path", "int", "float", "uuid"})


@attrs.frozen
class PathTemplate:
    """A parsed path template such as ``/files/{owner}/{path:path}``.

    ``segments`` holds ``(literal, None)`` for fixed parts and ``(None, name)``
    for parameters; ``catch_all`` names a final ``{name:path}`` that takes the
    rest of the path, slashes included.
    """

    raw: str
    segments: tuple[tuple[str | None, str | None], ...]
    catch_all: str | None
    # Computed once: every match of a template with parameters needs them.
    param_names: tuple[str, ...] = attrs.field(init=False)

    @param_names.default
    def _param_names(self) -> tuple[str, ...]:
        names = tuple(name for _, name in self.segments if name is not None)
        return (*names, self.catch_all) if self.catch_all else names

    @property
    def is_static(self) -> bool:
        return self.catch_all is None and all(name is None for _, name in self.segments)


_CONVERTER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[a-z]+\}")


def path_format(path: str) -> str:
    """``/files/{name:path}`` as ``/files/{name}``: the template without converters."""
    return _CONVERTER.sub(r"{\1}", path)


def as_lifespan(lifespan: Any) -> Callable[[Any], Any]:
    """A lifespan as FastAPI takes it: ``lifespan(app)`` as an async context manager,
    or an async or sync generator function (made one)."""
    if inspect.isasyncgenfunction(lifespan):
        return contextlib.asynccontextmanager(lifespan)
    if inspect.isgeneratorfunction(lifespan):
        sync = contextlib.contextmanager(lifespan)

        @contextlib.asynccontextmanager
        async def wrapped(app: Any) -> Any:
            with sync(app) as state:
                yield state

        return wrapped
    return cast("Callable[[Any], Any]", lifespan)


def merge_lifespans(outer: Any, inner: Any) -> Callable[[Any], Any]:
    """An app's lifespan around an included router's: both states, the app's winning."""
    inner_cm = as_lifespan(inner)
    if outer is None:
        return inner_cm
    outer_cm = as_lifespan(outer)

    @contextlib.asynccontextmanager
    async def merged(app: Any) -> Any:
        async with outer_cm(app) as outer_state, inner_cm(app) as inner_state:
            if outer_state is None and inner_state is None:
                yield None
            else:
                yield {**(inner_state or {}), **(outer_state or {})}

    return merged


def parse_template(path: str) -> PathTemplate:
    """Parses a path template.

    An empty path is allowed on a router, for a prefix to complete
    (``@router.get("")`` included with ``prefix="/items"``).

    Raises:
        RouteDefinitionError: The template is malformed.
    """
    if path == "":
        return PathTemplate("", (), None)
    if not path.startswith("/"):
        msg = f"route path {path!r} must start with '/'"
        raise RouteDefinitionError(msg)
    parts = path[1:].split("/")
    segments: list[tuple[str | None, str | None]] = []
    catch_all: str | None = None
    seen: set[str] = set()
    for index, part in enumerate(parts):
        if "{" not in part and "}" not in part:
            segments.append((part, None))
            continue
        match = _PARAM.match(part)
        if match is None:
            msg = (
                f"route path {path!r}: segment {part!r} must be a literal or a whole "
                "'{name}' / '{name:path}'"
            )
            raise RouteDefinitionError(msg)
        name, converter = match.group(1), match.group(2)
        if name in seen:
            msg = f"route path {path!r} uses the parameter {name!r} twice"
            raise RouteDefinitionError(msg)
        seen.add(name)
        if converter is not None and converter not in _PATH_CONVERTERS:
            msg = f"route path {path!r}: unknown converter {converter!r}; use ':path' or none"
            raise RouteDefinitionError(msg)
        if converter == "path":
            if index != len(parts) - 1:
                msg = f"route path {path!r}: '{{{name}:path}}' must be the last segment"
                raise RouteDefinitionError(msg)
            catch_all = name
        else:
            segments.append((None, name))
    return PathTemplate(path, tuple(segments), catch_all)


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset.UNSET
"""An option left out: ``response_model`` then comes from the return annotation."""


def check_body_limit(value: Any) -> int | None:
    """``value`` if it can be a ``max_body_size``: None, or an int >= 0 (not a bool).

    Raises:
        ValueError: It cannot (FastAPI's words), when the app, router or
            route is made, not on the first request.
    """
    if value is None or (type(value) is int and value >= 0):
        return value
    msg = f"max_body_size must be a non-negative integer or None, not {value!r}"
    raise ValueError(msg)


def _route_methods(methods: Iterable[str] | None) -> frozenset[str]:
    """A route's methods, upper case; ``GET`` when none are given (FastAPI's default)."""
    return frozenset(method.upper() for method in (("GET",) if methods is None else methods))


@attrs.define(eq=False)
class APIRoute:
    """One path operation: a template, its methods, its endpoint and its options.

    Every keyword FastAPI's route decorators take is a field here. Those that
    change behaviour: ``status_code``, ``response_model`` and the
    ``response_model_*`` options, ``response_class``, ``dependencies``,
    ``max_body_size``, ``strict_content_type``. The rest (``tags``,
    ``summary``, ``responses``, ``callbacks``, ``openapi_extra``...) describe
    the route for its documentation.

    A subclass (a router's ``route_class``) may override
    :meth:`get_route_handler` to wrap every request of the route, as in
    FastAPI: the handler takes the ``Request`` and returns the ``Response``.
    """

    path: str
    endpoint: Callable[..., Any]
    methods: frozenset[str] = attrs.field(default=None, converter=_route_methods)
    status_code: int | None = None
    name: str | None = None
    tags: tuple[Any, ...] = ()
    dependencies: tuple[Depends, ...] = ()
    response_class: type[Response] | None = None
    summary: str | None = None
    description: str | None = None
    include_in_schema: bool = True
    max_body_size: int | None = attrs.field(
        default=None, validator=lambda _, __, value: check_body_limit(value)
    )
    response_model: Any = UNSET
    responses: Mapping[int | str, Any] | None = None
    deprecated: bool | None = None
    operation_id: str | None = None
    response_description: str = "Successful Response"
    response_model_include: Any = None
    response_model_exclude: Any = None
    response_model_by_alias: bool = True
    response_model_exclude_unset: bool = False
    response_model_exclude_defaults: bool = False
    response_model_exclude_none: bool = False
    callbacks: Sequence[Any] | None = None
    openapi_extra: dict[str, Any] | None = None
    generate_unique_id_function: Callable[[Any], str] | None = None
    strict_content_type: bool | None = None
    form_limits: Any = None
    max_json_memory: float | None = None
    template: PathTemplate = attrs.field(init=False)
    dependant: Dependant | None = attrs.field(default=None, init=False)
    extra: tuple[Any, ...] = attrs.field(default=(), init=False)
    shape_response: Callable[[Any], Any] | None = attrs.field(default=None, init=False)
    # Or, for a pydantic response model and the plain JSONResponse: the body's
    # bytes (JSON data where pydantic cannot write them; see response_shaper).
    shape_json: Callable[[Any], Any] | None = attrs.field(default=None, init=False)
    # For a generator endpoint: how it streams, and its item type (_http/streams.py).
    stream: StreamPlan | None = attrs.field(default=None, init=False)
    # Why this route can only document, not serve (an OpenAPI callback's path).
    unservable: str | None = attrs.field(default=None, init=False)
    # get_route_handler()'s handler, when a subclass overrides it: the app
    # then serves the route through it (the default path needs none).
    handler: Callable[[Any], Awaitable[Any]] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        try:
            self.template = parse_template(self.path)
        except RouteDefinitionError as error:
            if "{$" not in self.path and self.path.startswith("/"):
                raise
            # An OpenAPI callback ("{$request.body#/callback_url}/invoices"):
            # a route that documents a request we send, never one we serve.
            self.template = PathTemplate(self.path, (), None)
            self.unservable = str(error)
        if self.name is None:
            self.name = getattr(self.endpoint, "__name__", None) or type(self.endpoint).__name__
        # A checked copy (a later change to the caller's dict changes nothing).
        self.form_limits = check_form_limits(self.form_limits) or None

    @property
    def path_format(self) -> str:
        """The path template without converters (``/files/{path}``), as FastAPI has it."""
        return path_format(self.path)

    def effective_response_model(self) -> Any:
        """``response_model=`` if given, else the endpoint's return annotation (FastAPI's rule)."""
        if self.response_model is not UNSET:
            return self.response_model
        from .params import return_annotation

        return return_annotation(self.endpoint)

    def prepare(self, global_dependencies: Sequence[Depends] = ()) -> None:
        """Analyses the endpoint and its dependencies; raises on any mistake."""
        from .params import CallKind, SubDependency, analyse
        from .responses import JSONResponse
        from .shaping import response_shaper, serialize_options

        names = frozenset(self.template.param_names)
        self.dependant = analyse(self.endpoint, names)
        extra: list[SubDependency] = []
        for marker in (*global_dependencies, *self.dependencies):
            if marker.dependency is None:
                msg = f"route {self.path!r}: dependencies=[Depends()] needs a callable"
                raise RouteDefinitionError(msg)
            extra.append(
                SubDependency(None, analyse(marker.dependency, names), marker.use_cache, marker)
            )
        self.extra = tuple(extra)
        self.dependant, self.extra = _one_body(self.dependant, self.extra)
        self._check_response_models()
        if self.dependant.kind in (CallKind.ASYNC_GEN, CallKind.SYNC_GEN):
            return  # the app says what to do instead; a generator has no response model
        where, model = f"route {self.path!r}", self.effective_response_model()
        options = serialize_options(self)
        if self.response_class is None or self.response_class is JSONResponse:
            self.shape_json = response_shaper(where, model, options, to_json=True)
        if self.shape_json is None:
            self.shape_response = response_shaper(where, model, options)
        if type(self).get_route_handler is not APIRoute.get_route_handler:
            self.handler = self.get_route_handler()

    def _check_response_models(self) -> None:
        # responses={400: {"model": M}} is read for the docs only, later: a
        # model there that cannot be one (a plain class, a pydantic v1 model)
        # is refused now, as FastAPI refuses it.
        from . import pydantic_engine
        from .shaping import response_shaper

        for status, spec in (self.responses or {}).items():
            model = spec.get("model") if isinstance(spec, Mapping) else None
            if model is not None:
                where = f"the {status} response model of route {self.path!r}"
                pydantic_engine.check_not_v1(model, where)
                try:
                    response_shaper(where, model, pydantic_engine.SerializeOptions())
                except RouteDefinitionError as error:
                    msg = (
                        f"{where} cannot be described: {error.__cause__ or error}. Use a "
                        "pydantic model, a dataclass, an attrs class or a TypedDict there."
                    )
                    raise RouteDefinitionError(msg) from error

    def get_route_handler(self) -> Callable[[Any], Awaitable[Any]]:
        """The coroutine function that answers one request of this route.

        ``await handler(request)`` solves the parameters from ``request`` (a
        subclass's own ``body()`` is what body parameters read), calls the
        endpoint and returns the ``Response``, raising what the endpoint or
        validation raised (``RequestValidationError``...). Override it in a
        subclass to wrap that, as FastAPI's "custom Request and APIRoute
        class" recipes do; the app still sends the response, runs the yield
        dependencies' teardown and hands the background tasks over after it.
        """
        from .app import route_response

        return functools.partial(route_response, self)


@final
@attrs.define(eq=False)
class APIWebSocketRoute:
    """One websocket endpoint: a template and its endpoint (``@app.websocket``)."""

    path: str
    endpoint: Callable[..., Any]
    name: str | None = None
    dependencies: tuple[Depends, ...] = ()
    methods: frozenset[str] = frozenset({"WEBSOCKET"})
    template: PathTemplate = attrs.field(init=False)
    dependant: Dependant | None = attrs.field(default=None, init=False)
    extra: tuple[Any, ...] = attrs.field(default=(), init=False)

    def __attrs_post_init__(self) -> None:
        self.template = parse_template(self.path)
        if self.name is None:
            self.name = getattr(self.endpoint, "__name__", None) or type(self.endpoint).__name__

    @property
    def path_format(self) -> str:
        """The path template without converters, as FastAPI has it."""
        return path_format(self.path)

    def prepare(self, global_dependencies: Sequence[Depends] = ()) -> None:
        """Analyses the endpoint and its dependencies; raises on any mistake."""
        from .params import SubDependency, analyse

        names = frozenset(self.template.param_names)
        self.dependant = analyse(self.endpoint, names)
        self.extra = tuple(
            SubDependency(None, analyse(marker.dependency, names), marker.use_cache, marker)
            for marker in (*global_dependencies, *self.dependencies)
            if marker.dependency is not None
        )


def _one_body(
    dependant: Dependant, extra: tuple[SubDependency, ...]
) -> tuple[Dependant, tuple[SubDependency, ...]]:
    """The request has one JSON body, shared by the endpoint and its dependencies.

    As in FastAPI, body parameters are counted across the whole tree (one
    name declared in several places counts once): with two or more, every
    one of them is read from the body by name, including a lone one in a
    dependency, which alone would be the whole body.
    """
    names: set[str] = set()

    def collect(node: Dependant) -> None:
        if not node.form_body:
            names.update(field.name for field in node.body)
        for sub in node.dependencies:
            collect(sub.dependant)

    collect(dependant)
    for sub in extra:
        collect(sub.dependant)
    if len(names) < 2:
        return dependant, extra

    def embedded(node: Dependant) -> Dependant:
        embed = node.embed_body or (bool(node.body) and not node.form_body)
        return attrs.evolve(node, embed_body=embed, dependencies=embedded_subs(node.dependencies))

    def embedded_subs(subs: tuple[SubDependency, ...]) -> tuple[SubDependency, ...]:
        return tuple(attrs.evolve(sub, dependant=embedded(sub.dependant)) for sub in subs)

    return embedded(dependant), embedded_subs(extra)


@attrs.define
class Found:
    # Not frozen: a frozen attrs class takes twice as long to build, and one
    # is built per request.
    route: APIRoute
    params: dict[str, str]


@attrs.frozen
class MethodNotAllowed:
    allowed: tuple[str, ...]


@attrs.frozen
class NotFound:
    pass


NOT_FOUND = NotFound()


@attrs.define(eq=False)
class _Node:
    static: dict[str, _Node] = attrs.Factory(dict)
    param: _Node | None = None
    # Routes ending here, by method; and those whose last part is {name:path}.
    routes: dict[str, APIRoute] = attrs.Factory(dict)
    catch_all: dict[str, APIRoute] = attrs.Factory(dict)


def _methods_with_head(routes: dict[str, APIRoute]) -> set[str]:
    methods = set(routes)
    if "GET" in methods:
        methods.add("HEAD")
    return methods


def _pick(routes: dict[str, APIRoute], method: str) -> APIRoute | None:
    route = routes.get(method)
    if route is None and method == "HEAD":
        route = routes.get("GET")
    return route


@final
class RouteTable:
    """The precomputed lookup structure for a set of routes."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, APIRoute]] = {}
        self._root = _Node()
        self.routes: list[APIRoute] = []

    def add(self, route: APIRoute) -> None:
        self.routes.append(route)
        template = route.template
        if template.is_static:
            by_method = self._static.setdefault(template.raw, {})
            for method in route.methods:
                by_method.setdefault(method, route)
            return
        node = self._root
        for literal, _ in template.segments:
            if literal is not None:
                node = node.static.setdefault(literal, _Node())
            else:
                if node.param is None:
                    node.param = _Node()
                node = node.param
        target = node.catch_all if template.catch_all else node.routes
        for method in route.methods:
            target.setdefault(method, route)

    def match(
        self, method: str, path: str, segments: list[str] | None = None
    ) -> Found | MethodNotAllowed | NotFound:
        """Finds the route for ``method`` and the decoded ``path``.

        Args:
            method: The request method, upper case.
            path: The decoded path, for the static index.
            segments: The decoded segments (``path[1:].split("/")`` unless a
                segment held an encoded slash).
        """
        allowed: set[str] | None = None  # methods of paths that matched, for a 405
        # A segment holding an encoded slash ("a%2Fb") is not the same path as
        # "a/b": only then does the static index not apply.
        literal = segments is None or not any("/" in segment for segment in segments)
        static = self._static.get(path) if literal else None
        if static is not None:
            route = _pick(static, method)
            if route is not None:
                return Found(route, {})
            allowed = _methods_with_head(static)
        if segments is None:
            segments = path[1:].split("/")
        # Depth first with an explicit stack: at each level the literal child,
        # then {param}, then a {name:path} catch-all, pushed in reverse order.
        last = len(segments)
        stack: list[tuple[_Node, int, tuple[str, ...], bool]] = [(self._root, 0, (), False)]
        while stack:
            node, index, captured, catch_all = stack.pop()
            if catch_all:
                rest = "/".join(segments[index:])
                if not rest:
                    continue  # "{name:path}" needs at least one character
                routes = node.catch_all
                captured = (*captured, rest)
            elif index == last:
                routes = node.routes
                if not routes:
                    continue
            else:
                segment = segments[index]
                if node.catch_all:
                    stack.append((node, index, captured, True))
                if node.param is not None and segment:
                    stack.append((node.param, index + 1, (*captured, segment), False))
                child = node.static.get(segment)
                if child is not None:
                    stack.append((child, index + 1, captured, False))
                continue
            route = _pick(routes, method)
            if route is not None:
                return Found(route, dict(zip(route.template.param_names, captured, strict=True)))
            allowed = _methods_with_head(routes) | (allowed or set())
        if allowed:
            return MethodNotAllowed(tuple(sorted(allowed)))
        return NOT_FOUND

    def has_path(self, path: str) -> bool:
        """True if some route matches ``path`` with any method (for slash redirects)."""
        return not isinstance(self.match("GET", path), NotFound)


_ROUTE_OPTIONS = (
    "status_code",
    "name",
    "response_class",
    "summary",
    "description",
    "include_in_schema",
    "max_body_size",
    "response_model",
    "responses",
    "deprecated",
    "operation_id",
    "response_description",
    "response_model_include",
    "response_model_exclude",
    "response_model_by_alias",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
    "callbacks",
    "openapi_extra",
    "generate_unique_id_function",
    "strict_content_type",
    "form_limits",
    "max_json_memory",
)
"""A route decorator's keywords, besides ``path``, ``methods``, ``tags`` and ``dependencies``."""


def _check_prefix(prefix: str, what: str) -> None:
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        msg = f"{what} prefix {prefix!r} must start with '/' and not end with '/'"
        raise RouteDefinitionError(msg)


class APIRouter:
    """A group of path operations sharing a prefix, tags, dependencies and options.

    Args:
        prefix: Prepended to every route's path (``"/users"``).
        tags: Added to every route, for documentation.
        dependencies: Solved before every route's endpoint, values discarded.
        default_response_class: The response class of routes that name none.
        responses, callbacks, deprecated, include_in_schema,
        generate_unique_id_function: Defaults for every route's documentation.
        strict_content_type, max_body_size, form_limits, max_json_memory: Defaults for every
            route's body handling.
        on_startup, on_shutdown, lifespan: Hooks run with the app's lifespan
            once the router is included.
        routes, redirect_slashes, default, dependency_overrides_provider,
        route_class: The ``APIRoute`` subclass this router's routes are made
            of (``get_route_handler`` may wrap their requests); included
            routes keep their own class.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[Any] | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] | None = None,
        responses: Mapping[int | str, Any] | None = None,
        callbacks: Sequence[Any] | None = None,
        routes: Sequence[Any] | None = None,
        redirect_slashes: bool = True,
        default: Any = None,
        dependency_overrides_provider: Any = None,
        route_class: Any = None,
        on_startup: Sequence[Callable[[], Any]] | None = None,
        on_shutdown: Sequence[Callable[[], Any]] | None = None,
        lifespan: Any = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Callable[[Any], str] | None = None,
        strict_content_type: bool | None = None,
        max_body_size: int | None = None,
        form_limits: Any = None,
        max_json_memory: float | None = None,
    ) -> None:
        _check_prefix(prefix, "router")
        self.prefix = prefix
        self.tags = tuple(tags or ())
        self.dependencies = tuple(dependencies or ())
        self.default_response_class = default_response_class
        self.responses = dict(responses or {})
        self.callbacks = list(callbacks or [])
        self.redirect_slashes = redirect_slashes
        self.default = default
        self.dependency_overrides_provider = dependency_overrides_provider
        self.on_startup: list[Callable[[], Any]] = list(on_startup or ())
        self.on_shutdown: list[Callable[[], Any]] = list(on_shutdown or ())
        self.lifespan_context = lifespan
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.generate_unique_id_function = generate_unique_id_function
        self.strict_content_type = strict_content_type
        self.max_body_size = check_body_limit(max_body_size)
        self.form_limits = check_form_limits(form_limits) or None
        self.max_json_memory = max_json_memory
        # The class of the routes this router makes (FastAPI's route_class):
        # an APIRoute subclass, whose get_route_handler() may wrap each request.
        self.route_class: type[APIRoute] = route_class or APIRoute
        self.routes: list[APIRoute] = []
        self.websocket_routes: list[APIWebSocketRoute] = []
        self.mounts: list[Mount] = []
        if routes:
            self._adopt_routes(routes)

    def _adopt_routes(self, routes: Sequence[Any]) -> None:
        """Adds route objects made on their own (``routes=[APIRoute(...), ...]``).

        Each is added as an included router's routes are, with this router's
        defaults under its own options; a websocket route and a ``Mount`` go
        where theirs go.
        """
        # Included as a router holding them is: include_router is the one
        # place route objects are added again under a router's defaults.
        holder = APIRouter()
        for route in routes:
            if isinstance(route, APIRoute):
                holder.routes.append(route)
            elif isinstance(route, APIWebSocketRoute):
                holder.websocket_routes.append(route)
            elif isinstance(route, Mount):
                holder.mounts.append(route)
            else:
                msg = f"routes= takes APIRoute, APIWebSocketRoute and Mount objects, not {route!r}"
                raise TypeError(msg)
        self.include_router(holder)

    def _register(self, route: APIRoute) -> None:
        self.routes.append(route)

    def mount(self, path: str, app: Any, name: str | None = None) -> None:
        """Serves the ASGI ``app`` under ``path`` (a sub-application, ``StaticFiles``...).

        Requests whose path is under the prefix go to ``app`` when no route
        of this router matches them; ``path`` alone is redirected to
        ``path + "/"``. See ``trioapi/_http/mounts.py``.

        Args:
            path: The prefix (``"/static"``; ``""`` or ``"/"`` for everything).
            app: Any ASGI app; a mounted ``TrioAPI`` gets ``root_path``.
            name: For ``url_path_for(name, path=...)``, and ``"name:route"``
                for the mounted app's routes.
        """
        self.mounts.append(Mount(path, app, name))

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """The path of the route named ``name``, filled with ``path_params``.

        Raises:
            NoMatchFound: No route (or mount) of that name takes exactly
                those parameters.
        """
        return url_path_for(self, name, path_params)

    def _register_websocket(self, route: APIWebSocketRoute) -> None:
        self.websocket_routes.append(route)

    def add_api_websocket_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        name: str | None = None,
        *,
        dependencies: Sequence[Depends] | None = None,
    ) -> APIWebSocketRoute:
        """Registers a websocket ``endpoint`` on ``path`` (prefix added)."""
        route = APIWebSocketRoute(
            path=self.prefix + path,
            endpoint=endpoint,
            name=name,
            dependencies=(*self.dependencies, *(dependencies or ())),
        )
        self._register_websocket(route)
        return route

    def websocket(
        self, path: str, name: str | None = None, *, dependencies: Sequence[Depends] | None = None
    ) -> Callable[[F], F]:
        """Registers a websocket endpoint (decorator): ``async def ws(websocket: WebSocket)``."""

        def decorator(endpoint: F) -> F:
            self.add_api_websocket_route(path, endpoint, name, dependencies=dependencies)
            return endpoint

        return decorator

    def websocket_route(self, path: str, name: str | None = None) -> Callable[[F], F]:
        """Starlette's spelling of :meth:`websocket`."""
        return self.websocket(path, name)

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] | None = None,
        tags: Sequence[Any] | None = None,
        dependencies: Sequence[Depends] | None = None,
        **options: Any,
    ) -> APIRoute:
        """Registers ``endpoint`` for ``methods`` on ``path`` (prefix added).

        Takes every keyword of FastAPI's ``add_api_route`` (see
        :class:`APIRoute`); the router's own defaults fill what is left out.
        """
        unknown = set(options) - set(_ROUTE_OPTIONS) - {"route_class_override"}
        if unknown:
            msg = f"route {path!r}: unknown option(s) {', '.join(sorted(unknown))}"
            raise TypeError(msg)
        route_class = options.pop("route_class_override", None) or self.route_class
        upper = _route_methods(methods)
        if not upper:
            msg = f"route {path!r} needs at least one method"
            raise RouteDefinitionError(msg)
        if options.get("response_class") is None:
            options["response_class"] = self.default_response_class
        for key in (
            "deprecated",
            "generate_unique_id_function",
            "strict_content_type",
            "max_body_size",
            "max_json_memory",
        ):
            if options.get(key) is None:
                options[key] = getattr(self, key)
        # Form limits merge, one setting at a time: the route's over the router's.
        options["form_limits"] = merge_form_limits(self.form_limits, options.get("form_limits"))
        if self.responses:
            options["responses"] = {**self.responses, **(options.get("responses") or {})}
        if self.callbacks:
            options["callbacks"] = [*self.callbacks, *(options.get("callbacks") or [])]
        options["include_in_schema"] = self.include_in_schema and options.get(
            "include_in_schema", True
        )
        route = route_class(
            path=self.prefix + path,
            endpoint=endpoint,
            methods=upper,
            tags=(*self.tags, *(tags or ())),
            dependencies=(*self.dependencies, *(dependencies or ())),
            **options,
        )
        self._register(route)
        return route

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Iterable[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> APIRoute:
        """Registers a Starlette-style endpoint: it gets the ``Request``, returns a ``Response``.

        FastAPI's routers have this from Starlette (``router.route`` is its
        decorator form): the endpoint's parameters are not analysed, so
        nothing is validated and nothing is documented (FastAPI leaves these
        routes out of the OpenAPI document whatever ``include_in_schema``
        says). A sync endpoint runs in a worker thread.
        """
        from .requests import Request

        async def starlette_style(request: Request) -> Any:
            if inspect.iscoroutinefunction(endpoint):
                return await endpoint(request)
            from ..concurrency import run_in_threadpool

            result = await run_in_threadpool(endpoint, request)
            return await result if inspect.isawaitable(result) else result

        starlette_style.__annotations__ = {"request": Request, "return": Any}
        starlette_style.__name__ = getattr(endpoint, "__name__", "endpoint")
        starlette_style.__qualname__ = getattr(endpoint, "__qualname__", "endpoint")
        starlette_style.__module__ = getattr(endpoint, "__module__", __name__)
        return self.add_api_route(
            path,
            starlette_style,
            methods=methods,
            name=name or starlette_style.__name__,
            include_in_schema=False,
        )

    def route(
        self,
        path: str,
        methods: Iterable[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_route` (Starlette's, deprecated there, kept by FastAPI)."""

        def decorator(endpoint: F) -> F:
            self.add_route(path, endpoint, methods, name, include_in_schema)
            return endpoint

        return decorator

    def api_route(
        self, path: str, *, methods: Iterable[str] | None = None, **options: Any
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`add_api_route`."""

        def decorator(endpoint: F) -> F:
            self.add_api_route(path, endpoint, methods=methods, **options)
            return endpoint

        return decorator

    def get(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``GET`` path operation (``HEAD`` is answered too)."""
        return self.api_route(path, methods=("GET",), **options)

    def post(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``POST`` path operation."""
        return self.api_route(path, methods=("POST",), **options)

    def put(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``PUT`` path operation."""
        return self.api_route(path, methods=("PUT",), **options)

    def patch(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``PATCH`` path operation."""
        return self.api_route(path, methods=("PATCH",), **options)

    def delete(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``DELETE`` path operation."""
        return self.api_route(path, methods=("DELETE",), **options)

    def head(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``HEAD`` path operation."""
        return self.api_route(path, methods=("HEAD",), **options)

    def options(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers an ``OPTIONS`` path operation."""
        return self.api_route(path, methods=("OPTIONS",), **options)

    def trace(self, path: str, **options: Any) -> Callable[[F], F]:
        """Registers a ``TRACE`` path operation."""
        return self.api_route(path, methods=("TRACE",), **options)

    def on_event(self, event: str) -> Callable[[Any], Any]:
        """Registers a ``"startup"`` or ``"shutdown"`` hook (decorator).

        Deprecated, as in FastAPI: pass ``lifespan=`` instead.
        """
        warnings.warn(
            "on_event is deprecated, use lifespan event handlers instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        if event not in ("startup", "shutdown"):
            msg = f"unknown event {event!r}; use 'startup' or 'shutdown'"
            raise ValueError(msg)

        def decorator(hook: Any) -> Any:
            (self.on_startup if event == "startup" else self.on_shutdown).append(hook)
            return hook

        return decorator

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[Any] | None = None,
        dependencies: Sequence[Depends] | None = None,
        default_response_class: type[Response] | None = None,
        responses: Mapping[int | str, Any] | None = None,
        callbacks: Sequence[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        generate_unique_id_function: Callable[[Any], str] | None = None,
        max_body_size: int | None = None,
        form_limits: Any = None,
        max_json_memory: float | None = None,
    ) -> None:
        """Adds ``router``'s routes (as they are now) under ``prefix``.

        The keywords apply to every included route, below the route's own
        options and above this router's defaults, as in FastAPI.
        """
        _check_prefix(prefix, "include_router")
        form_limits = check_form_limits(form_limits) or None
        if router is self:
            msg = (
                "Cannot include the same APIRouter instance into itself. Did you mean to "
                "include a different router?"
            )
            raise RouteDefinitionError(msg)
        check_body_limit(max_body_size)
        for route in router.routes:
            options = {key: getattr(route, key) for key in _ROUTE_OPTIONS}
            if options["response_class"] is None:
                options["response_class"] = default_response_class
            for key, value in (
                ("deprecated", deprecated),
                ("generate_unique_id_function", generate_unique_id_function),
                ("max_body_size", max_body_size),
                ("max_json_memory", max_json_memory),
            ):
                if options[key] is None:
                    options[key] = value
            options["form_limits"] = merge_form_limits(form_limits, options["form_limits"])
            if responses:
                options["responses"] = {**responses, **(options["responses"] or {})}
            if callbacks:
                options["callbacks"] = [*callbacks, *(options["callbacks"] or [])]
            options["include_in_schema"] = include_in_schema and route.include_in_schema
            self.add_api_route(
                prefix + route.path,
                route.endpoint,
                methods=route.methods,
                tags=(*(tags or ()), *route.tags),
                dependencies=(*(dependencies or ()), *route.dependencies),
                route_class_override=type(route),  # an included route keeps its class
                **options,
            )
        for ws_route in router.websocket_routes:
            self.add_api_websocket_route(
                prefix + ws_route.path,
                ws_route.endpoint,
                ws_route.name,
                dependencies=(*(dependencies or ()), *ws_route.dependencies),
            )
        for mount in router.mounts:
            self.mount(prefix + mount.path, mount.app, mount.name)
        self.on_startup.extend(router.on_startup)
        self.on_shutdown.extend(router.on_shutdown)
        if router.lifespan_context is not None:
            self.lifespan_context = merge_lifespans(self.lifespan_context, router.lifespan_context)
