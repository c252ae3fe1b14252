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

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, final

import attrs

from .._exceptions import RouteDefinitionError

if TYPE_CHECKING:
    from .params import Dependant, Depends
    from .responses import Response

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


def parse_template(path: str) -> PathTemplate:
    """Parses a path template.

    Raises:
        RouteDefinitionError: The template is malformed.
    """
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


@final
@attrs.define(eq=False)
class APIRoute:
    """One path operation: a template, its methods and its endpoint."""

    path: str
    endpoint: Callable[..., Any]
    methods: frozenset[str]
    status_code: int | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    dependencies: tuple[Depends, ...] = ()
    response_class: type[Response] | None = None
    summary: str | None = None
    description: str | None = None
    include_in_schema: bool = True
    max_body_size: int | None = None
    response_model: Any = None
    responses: Mapping[int | str, Any] | None = None
    deprecated: bool = False
    operation_id: str | None = None
    response_description: str = "Successful Response"
    template: PathTemplate = attrs.field(init=False)
    dependant: Dependant | None = attrs.field(default=None, init=False)
    extra: tuple[Any, ...] = attrs.field(default=(), init=False)
    shape_response: Callable[[Any], Any] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self.template = parse_template(self.path)
        if self.name is None:
            self.name = getattr(self.endpoint, "__name__", None)

    def prepare(self, global_dependencies: Sequence[Depends] = ()) -> None:
        """Analyses the endpoint and its dependencies; raises on any mistake."""
        from .params import SubDependency, analyse

        names = frozenset(self.template.param_names)
        self.dependant = analyse(self.endpoint, names)
        extra: list[SubDependency] = []
        for marker in (*global_dependencies, *self.dependencies):
            if marker.dependency is None:
                msg = f"route {self.path!r}: dependencies=[Depends()] needs a callable"
                raise RouteDefinitionError(msg)
            extra.append(SubDependency(None, analyse(marker.dependency, names), marker.use_cache))
        self.extra = tuple(extra)
        self.shape_response = _response_shaper(self.path, self.response_model)


def _response_shaper(path: str, model: Any) -> Callable[[Any], Any] | None:
    """For ``response_model=``: the function that makes a return value that model.

    A value that is already an instance passes as it is; anything else (a
    dict, say) is structured into the model with cattrs, so extra keys are
    dropped and a value that does not fit is the server's error (500), as in
    FastAPI. ``None`` and non-class annotations leave the value untouched.
    """
    if model is None or not isinstance(model, type) or not attrs.has(model):
        return None
    from .convert import body_structurer

    try:
        structure = body_structurer(model)
    except Exception as error:
        msg = f"route {path!r}: cannot use response_model={model!r}: {error}"
        raise RouteDefinitionError(msg) from error

    def shape(value: Any) -> Any:
        return value if isinstance(value, model) else structure(value)

    return shape


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


class APIRouter:
    """A group of path operations sharing a prefix, tags and dependencies.

    Args:
        prefix: Prepended to every route's path (``"/users"``).
        tags: Added to every route, for documentation.
        dependencies: Solved before every route's endpoint, values discarded.
    """

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        dependencies: Sequence[Depends] = (),
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            msg = f"router prefix {prefix!r} must start with '/' and not end with '/'"
            raise RouteDefinitionError(msg)
        self.prefix = prefix
        self.tags = tuple(tags)
        self.dependencies = tuple(dependencies)
        self.routes: list[APIRoute] = []

    def _register(self, route: APIRoute) -> None:
        self.routes.append(route)

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Iterable[str] = ("GET",),
        status_code: int | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        dependencies: Sequence[Depends] = (),
        response_class: type[Response] | None = None,
        summary: str | None = None,
        description: str | None = None,
        include_in_schema: bool = True,
        max_body_size: int | None = None,
        response_model: Any = None,
        responses: Mapping[int | str, Any] | None = None,
        deprecated: bool = False,
        operation_id: str | None = None,
        response_description: str = "Successful Response",
    ) -> APIRoute:
        """Registers ``endpoint`` for ``methods`` on ``path`` (prefix added).

        ``response_model`` (an attrs class) shapes what the endpoint returns;
        ``responses``, ``deprecated``, ``operation_id``, ``summary``,
        ``description`` and ``response_description`` describe the route, as
        FastAPI code passes them, and are kept on the route.
        """
        upper = frozenset(method.upper() for method in methods)
        if not upper:
            msg = f"route {path!r} needs at least one method"
            raise RouteDefinitionError(msg)
        route = APIRoute(
            path=self.prefix + path,
            endpoint=endpoint,
            methods=upper,
            status_code=status_code,
            name=name,
            tags=(*self.tags, *tags),
            dependencies=(*self.dependencies, *dependencies),
            response_class=response_class,
            summary=summary,
            description=description,
            include_in_schema=include_in_schema,
            max_body_size=max_body_size,
            response_model=response_model,
            responses=responses,
            deprecated=deprecated,
            operation_id=operation_id,
            response_description=response_description,
        )
        self._register(route)
        return route

    def api_route(
        self, path: str, *, methods: Iterable[str] = ("GET",), **options: Any
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

    def include_router(
        self,
        router: APIRouter,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        dependencies: Sequence[Depends] = (),
    ) -> None:
        """Adds ``router``'s routes (as they are now) under ``prefix``."""
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            msg = f"include_router prefix {prefix!r} must start with '/' and not end with '/'"
            raise RouteDefinitionError(msg)
        for route in router.routes:
            self.add_api_route(
                prefix + route.path,
                route.endpoint,
                methods=route.methods,
                status_code=route.status_code,
                name=route.name,
                tags=(*tags, *route.tags),
                dependencies=(*dependencies, *route.dependencies),
                response_class=route.response_class,
                summary=route.summary,
                description=route.description,
                include_in_schema=route.include_in_schema,
                max_body_size=route.max_body_size,
                response_model=route.response_model,
                responses=route.responses,
                deprecated=route.deprecated,
                operation_id=route.operation_id,
                response_description=route.response_description,
            )
