"""What every security scheme is: a dependency that also documents itself.

A scheme instance (``OAuth2PasswordBearer(tokenUrl="token")``,
``APIKeyHeader(name="X-Key")``...) is called as a dependency: it reads the
credentials from the request and returns them, or answers 401. It also
carries what the OpenAPI document says about it:

- ``scheme_name``: its key under ``components.securitySchemes`` and in each
  operation's ``security`` list (the class name unless given);
- ``model``: a :class:`SecuritySchemeModel`, the OpenAPI Security Scheme
  Object itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, final

__all__ = ["SecurityBase", "SecuritySchemeModel"]

# Optional fields of FastAPI's models (``fastapi.openapi.models``): unset,
# they are left out of the dict, and read as None as attributes.
_OPTIONAL_FIELDS = frozenset(
    {
        "description",
        "bearerFormat",
        "refreshUrl",
        "implicit",
        "password",
        "clientCredentials",
        "authorizationCode",
    }
)

# Python names for OpenAPI keys that are keywords or builtins.
_ATTRIBUTE_KEYS = {"in_": "in", "type_": "type"}


@final
class SecuritySchemeModel(dict[str, Any]):
    """An OpenAPI Security Scheme Object: a plain ``dict``, with attribute access.

    The keys are OpenAPI's (``"type"``, ``"in"``, ``"name"``, ``"scheme"``,
    ``"bearerFormat"``, ``"flows"``, ``"openIdConnectUrl"``,
    ``"description"``), every value is JSON data, and a field that is not set
    is absent rather than None: the dict goes into
    ``components.securitySchemes`` as it is. Nested objects (``flows`` and
    each flow) are ``SecuritySchemeModel`` too.

    As on FastAPI's pydantic models, the fields also read as attributes:
    ``model.name``, ``model.in_`` and ``model.type_`` (strings here, not
    enums), ``model.flows.password.tokenUrl``; an optional field that is not
    set reads as None.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        key = _ATTRIBUTE_KEYS.get(name, name)
        if key in self:
            return self[key]
        if key in _OPTIONAL_FIELDS:
            return None
        msg = f"the security scheme has no field {key!r} (its fields: {', '.join(self)})"
        raise AttributeError(msg)

    @classmethod
    def build(cls, items: Iterable[tuple[str, Any]]) -> SecuritySchemeModel:
        """A model from ``(key, value)`` pairs, leaving out the None values.

        Mappings among the values become ``SecuritySchemeModel`` in turn,
        except ``scopes`` (scope names are data, not fields).
        """
        model = cls()
        for key, value in items:
            if value is None:
                continue
            if isinstance(value, Mapping) and key != "scopes":
                value = cls.build(value.items())
            model[key] = value
        return model


class SecurityBase:
    """Base class of the security schemes (FastAPI's ``SecurityBase``).

    ``isinstance(dependency, SecurityBase)`` is how the OpenAPI document
    finds a route's security requirements. A custom scheme subclasses it (or
    one of the schemes), sets both attributes in ``__init__`` and defines
    ``async def __call__(self, request: Request)``.

    Attributes:
        model: The OpenAPI Security Scheme Object (see
            :class:`SecuritySchemeModel`).
        scheme_name: The scheme's name in the OpenAPI document.
    """

    model: SecuritySchemeModel
    scheme_name: str
