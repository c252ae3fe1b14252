"""The OpenAPI document says what validation enforces, for every model library.

For one body model per library (pydantic, a dataclass and a TypedDict that
pydantic validates, an attrs class that cattrs validates and msgspec
describes), two properties, with values generated from the app's own
document (``values()`` below draws them for the JSON Schema keywords the
documents use; jsonschema is the judge of what a schema allows):

- every value the documented schema allows is accepted by the endpoint (a
  constraint that validation enforces but the schema leaves out fails this);
- for values that the documented schema allows everywhere but in one field,
  which keeps its documented type but may have any size or content, or be
  missing (once for each field of each model), the endpoint accepts exactly
  the values the documented schema accepts (a constraint the schema states
  but validation does not enforce fails this, and so does one that validation
  checks differently, such as an inclusive bound documented as exclusive).

Types are kept in the second property on purpose: pydantic's lax mode
accepts ``"1"`` for an ``int``, as FastAPI does, which a JSON Schema cannot
say; that is a coercion, not a constraint.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from typing import Annotated, Any, Literal

import attrs
import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st

pytest.importorskip("pydantic")  # three of the four models are pydantic's to validate
jsonschema = pytest.importorskip("jsonschema")

from pydantic import BaseModel, Field  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from trioapi import TrioAPI  # noqa: E402
from trioapi.testclient import TestClient  # noqa: E402


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Dimensions(BaseModel):
    width: Annotated[float, Field(gt=0, le=1000)]
    height: Annotated[int, Field(ge=1, lt=50)]


class PydanticItem(BaseModel):
    name: Annotated[str, Field(min_length=2, max_length=8)]
    quantity: Annotated[int, Field(ge=0, le=99)] = 0
    tags: Annotated[list[Annotated[str, Field(max_length=3)]], Field(max_length=3)] = []
    colour: Colour = Colour.RED
    size: Literal["s", "m", "l"] | None = None
    dimensions: Dimensions | None = None


@dataclasses.dataclass
class DataclassItem:
    name: Annotated[str, Field(min_length=1, max_length=5)]
    scores: list[Annotated[int, Field(ge=-3, le=3)]]
    ratio: Annotated[float, Field(ge=0, lt=1)] = 0.5
    note: str | None = None


class TypedDictItem(TypedDict, total=False):
    code: Annotated[str, Field(pattern=r"^[a-z]{2}[0-9]$")]
    count: Annotated[int, Field(multiple_of=5, ge=0)]
    flags: list[bool]


@attrs.define
class AttrsPoint:
    x: int
    y: float


@attrs.define
class AttrsItem:
    label: str
    count: int
    points: list[AttrsPoint]
    kind: Literal["a", "b"] = "a"
    enabled: bool = True
    origin: AttrsPoint | None = None


MODELS: dict[str, Any] = {
    "pydantic": PydanticItem,
    "dataclass": DataclassItem,
    "typeddict": TypedDictItem,
    "attrs": AttrsItem,
}


def make_app() -> TrioAPI:
    app = TrioAPI()
    for name, model in MODELS.items():

        def endpoint(item: Any) -> None:
            return None

        endpoint.__annotations__ = {"item": model, "return": None}
        app.post(f"/{name}")(endpoint)
    return app


APP = make_app()
CLIENT = TestClient(APP)
DOCUMENT = APP.openapi()

# Keywords that constrain a value of a given type; ``required`` and
# ``additionalProperties`` constrain an object's keys.
CONSTRAINTS = frozenset(
    {
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "required",
        "enum",
        "const",
        "additionalProperties",
    }
)


def body_schema(name: str) -> dict[str, Any]:
    """The documented body of ``POST /name``, standalone (its ``$ref``s resolve in it)."""
    operation = DOCUMENT["paths"][f"/{name}"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": DOCUMENT["components"]}


def types_only(schema: Any) -> Any:
    """The schema with every constraint taken out: the same types, any size or content."""
    if isinstance(schema, list):
        return [types_only(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    relaxed = {key: types_only(value) for key, value in schema.items() if key not in CONSTRAINTS}
    if "enum" in schema and "type" not in schema:
        kinds = {type(value) for value in schema["enum"]}
        names = {str: "string", int: "integer", float: "number", bool: "boolean"}
        relaxed["type"] = sorted(names[kind] for kind in kinds if kind in names) or "null"
    return relaxed


def values(schema: Any, root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values for ``schema``: every keyword the documents use, and only those (else an error).

    hypothesis-jsonschema would do this, but its last release does not run on
    current hypothesis; the subset here is small and each keyword is checked
    against jsonschema by the properties themselves.
    """
    known = {
        "title", "description", "default", "examples", "format", "components", "$defs",
        "type", "properties", "required", "additionalProperties", "items", "anyOf",
        "oneOf", "$ref", "enum", "const", "minLength", "maxLength", "pattern", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    }  # fmt: skip
    unknown = set(schema) - known
    assert not unknown, f"values() does not know {unknown}: teach it before relying on it"
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return st.deferred(lambda: values(target, root))
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([values(sub, root) for sub in schema.get("anyOf", schema.get("oneOf"))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([values({**schema, "type": one}, root) for one in kind])
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if kind == "integer" or "multipleOf" in schema:
            step = schema.get("multipleOf", 1)
            ints = st.integers(
                None if low is None else -(-low // step), None if high is None else high // step
            ).map(lambda n: n * step)
            numbers = ints.filter(
                lambda n: (
                    n != schema.get("exclusiveMinimum") and n != schema.get("exclusiveMaximum")
                )
            )
            return numbers if kind == "integer" else numbers | numbers.map(float)
        floats = st.floats(
            low,
            high,
            allow_nan=False,
            allow_infinity=False,
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
        )
        int_low = (
            None
            if low is None
            else math.floor(low) + 1
            if "exclusiveMinimum" in schema
            else math.ceil(low)
        )
        int_high = (
            None
            if high is None
            else math.ceil(high) - 1
            if "exclusiveMaximum" in schema
            else math.floor(high)
        )
        if int_low is not None and int_high is not None and int_low > int_high:
            return floats
        return floats | st.integers(int_low, int_high)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        texts = st.text(min_size=low, max_size=high)
        if high is None:  # reach past any length a schema might state
            texts |= st.text(min_size=low + 8, max_size=low + 40)
        return texts
    if kind == "array":
        return st.lists(
            values(schema.get("items", {}), root),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
        )
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: values(sub, root) for name, sub in properties.items() if name in required},
            optional={
                name: values(sub, root) for name, sub in properties.items() if name not in required
            },
        )
    # No type: any JSON value.
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=5,
    )


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    # JSON Schema's patterns are ECMA 262 regular expressions, where "$" (no
    # multiline flag) matches only at the very end; Python's also matches
    # before a final newline, so jsonschema's own check would allow "ab1\n"
    # for "^[a-z]{2}[0-9]$", which pydantic (and a browser) refuse.
    if isinstance(instance, str) and not re.search(re.sub(r"(?<!\\)\$", r"\\Z", pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


ECMAValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


def judge(schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator for ``schema``, with ECMA's ``$``."""
    return ECMAValidator(schema)


def verdict(name: str, value: Any) -> bool:
    response = CLIENT.post(f"/{name}", json=value)
    assert response.status_code in (200, 422), response.text
    return response.status_code == 200


def test_every_model_library_is_documented_as_a_component() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    for model in MODELS.values():
        assert model.__name__ in schemas
    # The attrs class's schema comes from msgspec, the others' from pydantic.
    assert schemas["AttrsItem"]["required"] == ["label", "count", "points"]
    assert schemas["PydanticItem"]["properties"]["name"]["maxLength"] == 8


SETTINGS = hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", MODELS)
def test_every_value_the_schema_allows_is_accepted(name: str) -> None:
    schema = body_schema(name)

    @SETTINGS
    @hypothesis.given(value=values(schema, schema))
    def check(value: Any) -> None:
        assert verdict(name, value), value

    check()


def reachable(name: str) -> list[str]:
    """The components ``POST /name``'s body refers to, directly or through others."""
    seen: list[str] = []
    todo = [body_schema(name)["$ref"]]
    while todo:
        component = todo.pop().rsplit("/", 1)[1]
        if component not in seen:
            seen.append(component)
            todo.extend(
                re.findall(
                    r"'\$ref': '([^']+)'", repr(DOCUMENT["components"]["schemas"][component])
                )
            )
    return seen


FIELDS = [
    (name, component, field)
    for name in MODELS
    for component in reachable(name)
    for field in DOCUMENT["components"]["schemas"][component].get("properties", ())
]


def relax_one(name: str, component: str, field: str) -> dict[str, Any]:
    """``POST /name``'s body schema with one field of one component left unconstrained.

    The field keeps its type and loses its constraints, and is no longer
    required: values drawn from it are valid but for that one field.
    """
    schemas = dict(DOCUMENT["components"]["schemas"])
    target = dict(schemas[component])
    target["properties"] = {
        **target["properties"],
        field: types_only(target["properties"][field]),
    }
    target["required"] = [other for other in target.get("required", ()) if other != field]
    schemas[component] = target
    return {**body_schema(name), "components": {**DOCUMENT["components"], "schemas": schemas}}


@pytest.mark.parametrize(("name", "component", "field"), FIELDS)
def test_the_endpoint_accepts_exactly_what_the_schema_accepts(
    name: str, component: str, field: str
) -> None:
    validator = judge(body_schema(name))
    relaxed = relax_one(name, component, field)

    @SETTINGS
    @hypothesis.given(value=values(relaxed, relaxed))
    def check(value: Any) -> None:
        assert verdict(name, value) == validator.is_valid(value), value

    check()


def test_the_relaxed_schema_still_finds_values_outside_the_constraints() -> None:
    # Guards the second property: if types_only() left every constraint in,
    # it would only ever see valid values and could not fail.
    validator = judge(body_schema("pydantic"))
    relaxed = relax_one("pydantic", "PydanticItem", "name")
    seen: list[bool] = []

    @hypothesis.settings(max_examples=60, deadline=None, database=None)
    @hypothesis.given(value=values(relaxed, relaxed))
    def collect(value: Any) -> None:
        seen.append(validator.is_valid(value))

    collect()
    assert False in seen
