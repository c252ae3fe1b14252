"""Parameter markers: where a value comes from, and what it must satisfy (no I/O).

``Query()``, ``Path()``, ``Header()``, ``Cookie()``, ``Body()``, ``Form()``,
``File()``, ``Depends()`` and ``Security()`` take every keyword FastAPI's
take, so FastAPI code runs as written. A marker only describes; signature
analysis (:mod:`trioapi._http.params`) reads it once at registration.

Which keywords do what:

- enforced by both validation engines: ``default`` (``...`` means
  required), ``default_factory``, ``alias``/``validation_alias`` (a string),
  ``gt``/``ge``/``lt``/``le``, ``min_length``/``max_length``, ``pattern``
  (and its old name ``regex``), ``convert_underscores``, ``embed``;
- enforced by the pydantic engine (and handed to pydantic's ``Field``):
  ``multiple_of``, ``allow_inf_nan``, ``max_digits``, ``decimal_places``,
  ``strict``, ``discriminator``, ``union_mode``, ``fail_fast``,
  ``validate_default``; a marker that sets one of them makes its parameter
  go through pydantic when it is installed;
- documentation only, kept for the OpenAPI document: ``title``,
  ``description``, ``examples``/``example``, ``openapi_examples``,
  ``deprecated``, ``include_in_schema``, ``json_schema_extra``,
  ``serialization_alias``, ``alias_priority``, ``media_type`` and any extra
  keyword.

The classes form FastAPI's hierarchy (``Query`` is a ``Param``; ``File`` is
a ``Form`` is a ``Body``; ``Security`` is a ``Depends``), so ``isinstance``
checks written against FastAPI's ``params`` module keep working.
"""

from __future__ import annotations

import enum
import typing
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, final

import attrs

from .._exceptions import RouteDefinitionError, TrioAPIDeprecationWarning
from .convert import Constraints


@final
class _Required(enum.Enum):
    REQUIRED = "REQUIRED"

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required.REQUIRED
"""Marks a parameter without a default: the request must supply it."""


class ParamTypes(enum.Enum):
    """Where a ``Param`` is read from (FastAPI's ``params.ParamTypes``)."""

    query = "query"
    header = "header"
    path = "path"
    cookie = "cookie"


def _default(value: Any) -> Any:
    # FastAPI spells "required" as ``...``; keep one spelling inside.
    return REQUIRED if value is ... else value


_PYDANTIC_ONLY = (
    "multiple_of",
    "allow_inf_nan",
    "max_digits",
    "decimal_places",
    "strict",
    "discriminator",
    "union_mode",
    "fail_fast",
)


@attrs.frozen
class FieldMarker:
    """Common base of every value marker (``Param`` and ``Body`` families).

    Args:
        default: The value used when the request does not supply one; leave it
            out (or pass ``...``) to make the parameter required.
        default_factory: Called for a fresh default on each request.
        alias: The name on the wire, when it differs from the Python name.
        validation_alias: The name read from the request (a string wins over
            ``alias``).
        gt, ge, lt, le: Numeric bounds, checked after conversion.
        min_length, max_length: Length bounds for strings and lists.
        pattern: A regular expression a string must match (``re.search``);
            ``regex`` is its older name.
        title, description, examples, openapi_examples, deprecated,
        include_in_schema, json_schema_extra: Documentation for the schema.
        extra: Any other keyword, kept for the schema (as FastAPI does).
    """

    default: Any = attrs.field(default=REQUIRED, converter=_default)
    default_factory: Callable[[], Any] | None = attrs.field(default=None, kw_only=True)
    alias: str | None = attrs.field(default=None, kw_only=True)
    alias_priority: int | None = attrs.field(default=None, kw_only=True)
    validation_alias: Any = attrs.field(default=None, kw_only=True)
    serialization_alias: str | None = attrs.field(default=None, kw_only=True)
    title: str | None = attrs.field(default=None, kw_only=True)
    description: str | None = attrs.field(default=None, kw_only=True)
    gt: float | None = attrs.field(default=None, kw_only=True)
    ge: float | None = attrs.field(default=None, kw_only=True)
    lt: float | None = attrs.field(default=None, kw_only=True)
    le: float | None = attrs.field(default=None, kw_only=True)
    min_length: int | None = attrs.field(default=None, kw_only=True)
    max_length: int | None = attrs.field(default=None, kw_only=True)
    pattern: str | None = attrs.field(default=None, kw_only=True)
    regex: str | None = attrs.field(default=None, kw_only=True)
    discriminator: Any = attrs.field(default=None, kw_only=True)
    strict: bool | None = attrs.field(default=None, kw_only=True)
    validate_default: bool | None = attrs.field(default=None, kw_only=True)
    union_mode: Literal["smart", "left_to_right"] | None = attrs.field(default=None, kw_only=True)
    fail_fast: bool | None = attrs.field(default=None, kw_only=True)
    multiple_of: float | None = attrs.field(default=None, kw_only=True)
    allow_inf_nan: bool | None = attrs.field(default=None, kw_only=True)
    max_digits: int | None = attrs.field(default=None, kw_only=True)
    decimal_places: int | None = attrs.field(default=None, kw_only=True)
    examples: list[Any] | None = attrs.field(default=None, kw_only=True)
    example: Any = attrs.field(default=None, kw_only=True)
    openapi_examples: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    deprecated: Any = attrs.field(default=None, kw_only=True)
    include_in_schema: bool = attrs.field(default=True, kw_only=True)
    json_schema_extra: Any = attrs.field(default=None, kw_only=True)
    extra: dict[str, Any] = attrs.field(factory=dict, kw_only=True)
    # The keywords the caller passed, so that an explicit ``alias=None``
    # (or ``title=None``...) clears what a pydantic ``Field`` beside the
    # marker in ``Annotated`` says, as in FastAPI.
    _explicit: frozenset[str] = attrs.field(
        factory=frozenset, kw_only=True, eq=False, repr=False, alias="_explicit"
    )

    source: typing.ClassVar[str] = ""

    def explicitly_set(self, name: str) -> bool:
        """The caller passed ``name`` (even as None)."""
        return name in self._explicit

    @property
    def wire_alias(self) -> str | None:
        """The name read from the request, if it is not the parameter's own."""
        if isinstance(self.validation_alias, str) and self.validation_alias:
            return self.validation_alias
        return self.alias

    @property
    def effective_pattern(self) -> str | None:
        return self.pattern if self.pattern is not None else self.regex

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.default_factory is None

    def constraints(self) -> Constraints:
        return Constraints(
            gt=self.gt,
            ge=self.ge,
            lt=self.lt,
            le=self.le,
            min_length=self.min_length,
            max_length=self.max_length,
            pattern=self.effective_pattern,
        )

    def needs_pydantic(self) -> bool:
        """A keyword only pydantic enforces is set (see the module docstring)."""
        return any(getattr(self, name) is not None for name in _PYDANTIC_ONLY) or (
            self.validation_alias is not None and not isinstance(self.validation_alias, str)
        )

    def pydantic_field_kwargs(self) -> dict[str, Any]:
        """The keywords to hand to ``pydantic.Field`` for validation."""
        names = ("gt", "ge", "lt", "le", "min_length", "max_length", *_PYDANTIC_ONLY)
        kwargs = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        if self.effective_pattern is not None:
            kwargs["pattern"] = self.effective_pattern
        return kwargs


def _marker_init(cls: type[Any]) -> type[Any]:
    """Lets a marker take unknown keywords, as FastAPI's do, keeping them in ``extra``."""
    generated = cls.__init__
    known = {field.name for field in attrs.fields(cls)}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if "_explicit" not in kwargs:  # attrs.evolve passes it on
            kwargs["_explicit"] = frozenset(key for key in kwargs if key in known)
        unknown = {key: kwargs.pop(key) for key in list(kwargs) if key not in known}
        if unknown:
            kwargs["extra"] = {**kwargs.get("extra", {}), **unknown}
        if kwargs.get("example") is not None:
            warnings.warn(
                "`example` has been deprecated, please use `examples` instead",
                TrioAPIDeprecationWarning,
                stacklevel=2,
            )
        if kwargs.get("regex") is not None:
            warnings.warn(
                "`regex` has been deprecated, please use `pattern` instead",
                TrioAPIDeprecationWarning,
                stacklevel=2,
            )
        generated(self, *args, **kwargs)

    __init__.__doc__ = generated.__doc__
    cls.__init__ = __init__
    cls.__repr__ = _marker_repr  # type: ignore[assignment]
    return cls


def _marker_repr(self: FieldMarker) -> str:
    # FastAPI's form, ``Query(10)``; a required marker shows pydantic's name
    # for "no default", as FastAPI's does, so logs read the same.
    default = "PydanticUndefined" if self.default is REQUIRED else self.default
    return f"{type(self).__name__}({default})"


@_marker_init
@attrs.frozen
class Param(FieldMarker):
    """A value read from the request's URL or headers (FastAPI's ``params.Param``).

    Used bare (``q: str = Param(None)``), it reads the query, as in FastAPI.
    """

    source: typing.ClassVar[str] = "query"
    in_: typing.ClassVar[ParamTypes] = ParamTypes.query


@final
@_marker_init
@attrs.frozen
class Query(Param):
    """Reads the parameter from the query string (``?name=value``)."""

    source: typing.ClassVar[str] = "query"
    in_: typing.ClassVar[ParamTypes] = ParamTypes.query


@final
@_marker_init
@attrs.frozen
class Path(Param):
    """Reads the parameter from the path template (``/items/{item_id}``).

    A path parameter is always in the URL: it has no default (``Path(1)``
    raises, as in FastAPI).
    """

    source: typing.ClassVar[str] = "path"
    in_: typing.ClassVar[ParamTypes] = ParamTypes.path

    def __attrs_post_init__(self) -> None:
        if self.default is not REQUIRED:
            msg = "Path parameters cannot have a default value"
            raise RouteDefinitionError(msg)


@final
@_marker_init
@attrs.frozen
class Header(Param):
    """Reads the parameter from a request header.

    Args:
        convert_underscores: ``user_agent`` reads the ``user-agent`` header
            (the default); set False to use the name as written.
    """

    convert_underscores: bool = attrs.field(default=True, kw_only=True)
    source: typing.ClassVar[str] = "header"
    in_: typing.ClassVar[ParamTypes] = ParamTypes.header


@final
@_marker_init
@attrs.frozen
class Cookie(Param):
    """Reads the parameter from a request cookie."""

    source: typing.ClassVar[str] = "cookie"
    in_: typing.ClassVar[ParamTypes] = ParamTypes.cookie


@_marker_init
@attrs.frozen
class Body(FieldMarker):
    """Reads the parameter from the request body.

    Args:
        embed: Expect ``{"<name>": value}`` instead of the bare value, even
            when this is the only body parameter.
        media_type: The body's media type, for the schema.
    """

    embed: bool | None = attrs.field(default=None, kw_only=True)
    media_type: str = attrs.field(default="application/json", kw_only=True)
    source: typing.ClassVar[str] = "body"


@_marker_init
@attrs.frozen
class Form(Body):
    """Reads the parameter from a submitted form (urlencoded or multipart)."""

    media_type: str = attrs.field(default="application/x-www-form-urlencoded", kw_only=True)
    source: typing.ClassVar[str] = "form"


@final
@_marker_init
@attrs.frozen
class File(Form):
    """Reads an uploaded file (``bytes`` or ``UploadFile``) from a multipart form."""

    media_type: str = attrs.field(default="multipart/form-data", kw_only=True)
    source: typing.ClassVar[str] = "file"


@attrs.frozen
class Depends:
    """Declares a dependency: ``db: Annotated[DB, Depends(get_db)]``.

    Args:
        dependency: The callable (function, class, generator) to call; its own
            parameters are resolved the same way. Leave it out to use the
            annotated class itself.
        use_cache: Within one request, call the dependency once and share the
            value with everyone who asks for it (the default).
        scope: For yield dependencies: ``"function"`` ends them before the
            response is sent, ``"request"`` (the default) after it.
    """

    dependency: Callable[..., Any] | None = None
    use_cache: bool = attrs.field(default=True, kw_only=True)
    scope: Literal["function", "request"] | None = attrs.field(default=None, kw_only=True)
    max_concurrency: int | None = attrs.field(default=None, kw_only=True)


@final
@attrs.frozen
class Security(Depends):
    """A dependency that is also a security requirement, with OAuth2 ``scopes``."""

    scopes: Sequence[str] = attrs.field(default=(), kw_only=True, converter=tuple)


@final
class SecurityScopes:
    """Injected into a dependency that declares it: the OAuth2 scopes the route requires.

    Args:
        scopes: The scopes of every ``Security()`` on the way to this dependency.
    """

    def __init__(self, scopes: Sequence[str] | None = None) -> None:
        self.scopes: list[str] = list(scopes or [])

    @property
    def scope_str(self) -> str:
        """The scopes separated by spaces, as OAuth2 writes them."""
        return " ".join(self.scopes)

    def __repr__(self) -> str:
        return f"SecurityScopes({self.scopes!r})"


MARKER_TYPES = (FieldMarker, Depends)
"""What ``Annotated[...]`` metadata or a default can be, to mean "a marker"."""
