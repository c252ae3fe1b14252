"""Small read-only views over ASGI's raw headers and query strings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Any, NamedTuple, final
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from .._exceptions import MalformedRequestError


@final
class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued request headers.

    ``headers["content-type"]`` gives the first value; ``getlist`` all of them.
    Values are decoded as latin-1, as HTTP/1.1 defines.
    """

    __slots__ = ("_index", "_raw")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self._raw = raw
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Headers:
        return cls([(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in values.items()])

    def _build(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, value in self._raw:
            index.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        self._index = index
        return index

    def __getitem__(self, key: str) -> str:
        index = self._index if self._index is not None else self._build()
        return index[key.lower()][0]

    def __contains__(self, key: object) -> bool:
        index = self._index if self._index is not None else self._build()
        return isinstance(key, str) and key.lower() in index

    def __iter__(self) -> Iterator[str]:
        index = self._index if self._index is not None else self._build()
        return iter(index)

    def __len__(self) -> int:
        index = self._index if self._index is not None else self._build()
        return len(index)

    def getlist(self, key: str) -> list[str]:
        """Every value of header ``key``, in order."""
        index = self._index if self._index is not None else self._build()
        return list(index.get(key.lower(), ()))

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` line, names lower-cased, repeated names included."""
        return [
            (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in self._raw
        ]

    def raw(self) -> list[tuple[bytes, bytes]]:
        return list(self._raw)

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"


@final
class QueryParams(Mapping[str, str]):
    """The query string's parameters: ``params["q"]`` is the last value (as in Starlette).

    Decoding is strict: a value that is not valid UTF-8 after percent-decoding
    raises :class:`MalformedRequestError` (400), instead of being silently
    replaced.
    """

    __slots__ = ("_index",)

    def __init__(self, query_string: bytes | str = b"") -> None:
        if isinstance(query_string, bytes):
            try:
                query_string = query_string.decode("ascii")
            except UnicodeDecodeError:
                raise MalformedRequestError("the query string is not valid ASCII") from None
        index: dict[str, list[str]] = {}
        if query_string:
            try:
                pairs = parse_qsl(query_string, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                msg = "the query string is not valid UTF-8 once percent-decoded"
                raise MalformedRequestError(msg) from None
            except ValueError as error:
                raise MalformedRequestError(f"the query string is malformed: {error}") from None
            for key, value in pairs:
                index.setdefault(key, []).append(value)
        self._index = index

    def __getitem__(self, key: str) -> str:
        return self._index[key][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(key, value)`` pair, repeated keys included."""
        return [(key, value) for key, found in self._index.items() for value in found]

    def __len__(self) -> int:
        return len(self._index)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (``?tag=a&tag=b``)."""
        return list(self._index.get(key, ()))

    def __repr__(self) -> str:
        return f"QueryParams({self._index!r})"


def parse_cookies(headers: Headers) -> dict[str, str]:
    """Parses every ``Cookie`` header; malformed pairs are skipped, as browsers do.

    A name sent twice keeps its last value, as FastAPI (Starlette's parser) reads it.
    """
    cookies: dict[str, str] = {}
    for header in headers.getlist("cookie"):
        for chunk in header.split(";"):
            name, sep, value = chunk.partition("=")
            name = name.strip()
            if not sep or not name:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                try:
                    parsed: SimpleCookie = SimpleCookie()
                    parsed.load(f"x={value}")
                    value = parsed["x"].value
                except (CookieError, KeyError):
                    value = value[1:-1]
            cookies[name] = value
    return cookies


class State:
    """An attribute bag: ``app.state.db = ...``, ``request.state.user = ...``."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        # Shares ``values`` (the ASGI scope's "state" dict) rather than copying it.
        super().__setattr__("_values", values if values is not None else {})

    def __setattr__(self, name: str, value: Any) -> None:
        self._values[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            msg = f"{type(self).__name__} has no attribute {name!r}; set it first"
            raise AttributeError(msg) from None

    def __delattr__(self, name: str) -> None:
        try:
            del self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"State({self._values!r})"


class Address(NamedTuple):
    """A peer's ``(host, port)``, as ``request.client`` gives it."""

    host: str
    port: int


@final
class URL:
    """A URL with its parts: ``request.url.path``, ``.query``; ``str(url)`` is the whole.

    Compares equal to its string, as Starlette's does.
    """

    __slots__ = ("_parts", "_url")

    def __init__(self, url: str = "") -> None:
        self._url = url
        self._parts: SplitResult | None = None

    @property
    def components(self) -> SplitResult:
        if self._parts is None:
            self._parts = urlsplit(self._url)
        return self._parts

    @property
    def scheme(self) -> str:
        return self.components.scheme

    @property
    def netloc(self) -> str:
        return self.components.netloc

    @property
    def path(self) -> str:
        return self.components.path

    @property
    def query(self) -> str:
        return self.components.query

    @property
    def fragment(self) -> str:
        return self.components.fragment

    @property
    def hostname(self) -> str | None:
        return self.components.hostname

    @property
    def port(self) -> int | None:
        return self.components.port

    @property
    def username(self) -> str | None:
        return self.components.username

    @property
    def password(self) -> str | None:
        return self.components.password

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def replace(self, **parts: Any) -> URL:
        """A copy with some parts replaced (``scheme``, ``netloc``, ``path``, ``query``...)."""
        return URL(urlunsplit(self.components._replace(**parts)))

    def include_query_params(self, **params: Any) -> URL:
        query = dict(parse_qsl(self.query, keep_blank_values=True))
        query.update({key: str(value) for key, value in params.items()})
        return self.replace(query=urlencode(query))

    def remove_query_params(self, keys: str | Sequence[str]) -> URL:
        drop = {keys} if isinstance(keys, str) else set(keys)
        kept = [(k, v) for k, v in parse_qsl(self.query, keep_blank_values=True) if k not in drop]
        return self.replace(query=urlencode(kept))

    def __str__(self) -> str:
        return self._url

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str | URL) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self._url)

    def __repr__(self) -> str:
        return f"URL({self._url!r})"


@final
class DefaultPlaceholder:
    """A default that was not given explicitly (FastAPI's ``datastructures.DefaultPlaceholder``).

    Lets code tell "left out" from "set to the same value": it is truthy as its
    value is, and equal only to another placeholder of an equal value.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DefaultPlaceholder) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("DefaultPlaceholder", repr(self.value)))

    def __repr__(self) -> str:
        return f"DefaultPlaceholder({self.value!r})"


def Default(value: Any) -> Any:
    """Wraps ``value`` in a :class:`DefaultPlaceholder` (typed as the value itself)."""
    return DefaultPlaceholder(value)
