"""Signature analysis and value conversion, tested without I/O.

Types named in annotations live at module level: annotations are read with
``typing.get_type_hints``, which sees module globals only.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal, NewType, Optional

import attrs
import pytest

from trioapi import (
    BackgroundTasks,
    Body,
    Cookie,
    Depends,
    Form,
    Header,
    Path,
    Query,
    Request,
    Response,
    RouteDefinitionError,
    TrioAPI,
)
from trioapi._http.convert import (
    Constraints,
    ConversionError,
    body_errors,
    body_structurer,
    sequence_item,
    string_converter,
)
from trioapi._http.params import REQUIRED, CallKind, Dependant, Field, Special, analyse


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Shape(enum.Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"


class Slug(str):
    pass


UserId = NewType("UserId", int)


@attrs.define
class Tag:
    label: str


@attrs.define
class Item:
    name: str
    price: float
    tags: list[Tag] = attrs.Factory(list)
    note: str | None = None
    count: int = 1


@attrs.define
class Order:
    item: Item
    quantity: int


def field_named(dependant: Dependant, name: str) -> Field:
    for field in (*dependant.fields, *dependant.body):
        if field.name == name:
            return field
    raise AssertionError(f"no field {name!r} in {dependant.qualname}")


def conversion_error(convert: Any, value: Any) -> ConversionError:
    with pytest.raises(ConversionError) as caught:
        convert(value)
    return caught.value


def structure_errors(tp: Any, value: Any) -> list[dict[str, Any]]:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - cattrs raises groups
        body_structurer(tp)(value)
    return body_errors(caught.value, ["body"], value)


# --- string_converter ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "text", "expected"),
    [
        (str, "héllo", "héllo"),
        (int, "42", 42),
        (int, "-7", -7),
        (float, "2.5", 2.5),
        (float, "3", 3.0),
        (decimal.Decimal, "1.10", decimal.Decimal("1.10")),
        (
            uuid.UUID,
            "12345678-1234-5678-1234-567812345678",
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
        ),
        (datetime.date, "2024-02-29", datetime.date(2024, 2, 29)),
        (
            datetime.datetime,
            "2024-01-02T03:04:05+00:00",
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        ),
        (datetime.time, "12:30", datetime.time(12, 30)),
        (Color, "green", Color.GREEN),
        (Level, "2", Level.HIGH),
        (Literal["asc", "desc"], "desc", "desc"),
        (Literal[1, 2], "2", 2),
        (Optional[int], "5", 5),  # noqa: UP045 - the typing.Optional spelling on purpose
        (int | None, "5", 5),
        (UserId, "9", 9),
        (Any, "raw", "raw"),
    ],
)
def test_string_converter_builds_the_annotated_type(tp: Any, text: str, expected: Any) -> None:
    value = string_converter(tp)(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "text", ["true", "True", "1", "yes", "on", "t", "y", "false", "0", "no", "off", "F", "n"]
)
def test_bool_converter_accepts_the_usual_spellings(text: str) -> None:
    assert string_converter(bool)(text) is (text.lower() in {"true", "1", "yes", "on", "t", "y"})


def test_str_subclass_values_are_wrapped_in_the_subclass() -> None:
    value = string_converter(Slug)("a-b")
    assert type(value) is Slug
    assert value == "a-b"


def test_union_converter_tries_members_in_order() -> None:
    convert = string_converter(int | float)
    assert convert("5") == 5
    assert type(convert("5.5")) is float


def test_a_union_with_str_keeps_the_string_as_pydantics_smart_mode_does() -> None:
    # FastAPI (pydantic's default union mode): "5" is an exact match for str.
    convert = string_converter(int | str)
    assert convert("5") == "5"
    assert convert("five") == "five"


@pytest.mark.parametrize(
    ("tp", "text", "error_type", "msg"),
    [
        (int, "4.2", "int_parsing", "Input should be a valid integer, unable to parse string"),
        (int, "", "int_parsing", "Input should be a valid integer, unable to parse string"),
        (float, "abc", "float_parsing", "Input should be a valid number, unable to parse string"),
        (bool, "maybe", "bool_parsing", "Input should be a valid boolean, unable to interpret"),
        (uuid.UUID, "not-a-uuid", "uuid_parsing", "Input should be a valid UUID"),
        (decimal.Decimal, "abc", "decimal_parsing", "Input should be a valid decimal"),
        (decimal.Decimal, "NaN", "finite_number", "Input should be a finite number"),
        (datetime.date, "2024-02-30", "date_parsing", "Input should be a valid date"),
        (datetime.datetime, "yesterday", "datetime_parsing", "Input should be a valid datetime"),
        (Color, "RED", "enum", "Input should be 'red' or 'green'"),
        (Level, "3", "enum", "Input should be 1 or 2"),
        (Shape, "hexagon", "enum", "Input should be 'circle', 'square' or 'triangle'"),
        (Literal["asc", "desc"], "up", "literal_error", "Input should be 'asc' or 'desc'"),
        (Literal["a", "b", "c"], "d", "literal_error", "Input should be 'a', 'b' or 'c'"),
        (Literal[1, True], "x", "literal_error", "Input should be 1 or True"),
        (int | None, "x", "int_parsing", "Input should be a valid integer"),
    ],
)
def test_string_converter_failure_names_the_error_type(
    tp: Any, text: str, error_type: str, msg: str
) -> None:
    error = conversion_error(string_converter(tp), text)
    assert error.type == error_type
    assert error.msg.startswith(msg)


def test_enum_error_carries_the_expected_values() -> None:
    error = conversion_error(string_converter(Color), "blue")
    assert error.ctx == {"expected": "'red' or 'green'"}


@pytest.mark.parametrize("tp", [dict, list[str], Item, dict[str, int], bytearray])
def test_string_converter_refuses_types_a_string_cannot_hold(tp: Any) -> None:
    with pytest.raises(TypeError, match="cannot convert a string to"):
        string_converter(tp)


@pytest.mark.parametrize(
    ("tp", "item"),
    [(list[int], int), (list, str), (set[str], str), (tuple[float, ...], float), (int, None)],
)
def test_sequence_item_finds_the_element_type(tp: Any, item: Any) -> None:
    assert sequence_item(tp) is item


# --- Constraints ------------------------------------------------------------------------


def test_empty_constraints_check_nothing() -> None:
    assert Constraints().checker() is None


@pytest.mark.parametrize(
    ("constraints", "bad", "error_type", "ctx"),
    [
        (Constraints(gt=0), 0, "greater_than", {"gt": 0}),
        (Constraints(ge=1), 0, "greater_than_equal", {"ge": 1}),
        (Constraints(lt=10), 10, "less_than", {"lt": 10}),
        (Constraints(le=10), 11, "less_than_equal", {"le": 10}),
        (
            Constraints(pattern="^[a-z]+$"),
            "Abc",
            "string_pattern_mismatch",
            {"pattern": "^[a-z]+$"},
        ),
    ],
)
def test_constraint_violation_reports_type_and_limit(
    constraints: Constraints, bad: Any, error_type: str, ctx: dict[str, Any]
) -> None:
    check = constraints.checker()
    assert check is not None
    error = conversion_error(check, bad)
    assert (error.type, error.ctx) == (error_type, ctx)


def test_constraints_let_values_on_the_inclusive_bounds_through() -> None:
    check = Constraints(ge=1, le=10, min_length=None).checker()
    assert check is not None
    check(1)
    check(10)
    with pytest.raises(ConversionError):
        check(10.5)


def test_length_constraints_apply_to_strings_and_lists() -> None:
    check = Constraints(min_length=2, max_length=3).checker()
    assert check is not None
    check("ab")
    check([1, 2, 3])
    assert conversion_error(check, "a").ctx == {"min_length": 2}
    assert conversion_error(check, [1, 2, 3, 4]).ctx == {"max_length": 3}


def test_pattern_is_searched_not_fully_matched() -> None:
    check = Constraints(pattern="b").checker()
    assert check is not None
    check("abc")
    assert conversion_error(check, "xyz").msg == "String should match pattern 'b'"


# --- body_structurer and body_errors ----------------------------------------------------


def test_body_structurer_builds_nested_attrs_classes_with_defaults() -> None:
    order = body_structurer(Order)(
        {"item": {"name": "pen", "price": 2, "tags": [{"label": "blue"}]}, "quantity": 3}
    )
    assert order == Order(Item("pen", 2.0, [Tag("blue")]), 3)
    assert type(order.item.price) is float


def test_body_structurer_fills_optional_fields_and_defaults() -> None:
    item = body_structurer(Item)({"name": "pen", "price": 1.5, "note": None})
    assert item == Item("pen", 1.5, [], None, 1)
    assert body_structurer(Item)({"name": "pen", "price": 1.5, "note": "x"}).note == "x"


def test_body_structurer_builds_lists_of_classes() -> None:
    tags = body_structurer(list[Tag])([{"label": "a"}, {"label": "b"}])
    assert tags == [Tag("a"), Tag("b")]


def test_body_structurer_ignores_unknown_keys() -> None:
    assert body_structurer(Tag)({"label": "a", "extra": 1}) == Tag("a")


def test_body_structurer_passes_any_through() -> None:
    value = {"anything": [1, "two"]}
    assert body_structurer(Any)(value) is value


def test_body_structurer_refuses_bytes() -> None:
    with pytest.raises(TypeError, match="raw"):
        body_structurer(bytes)


def test_json_integer_is_accepted_for_float_but_not_the_other_way() -> None:
    assert body_structurer(float)(3) == 3.0
    assert structure_errors(int, 2.5)[0]["type"] == "int_type"


@pytest.mark.parametrize(
    ("tp", "value", "error_type"),
    [
        (int, True, "int_type"),
        (int, "1", "int_type"),
        (str, 1, "string_type"),
        (bool, 1, "bool_type"),
        (float, "1.5x", "float_type"),
        (dict, [1], "dict_type"),
        (list, {}, "list_type"),
        (Color, "blue", "enum"),
        (uuid.UUID, 5, "string_type"),
    ],
)
def test_wrong_json_type_is_one_entry_at_the_root(tp: Any, value: Any, error_type: str) -> None:
    [entry] = structure_errors(tp, value)
    assert entry["type"] == error_type
    assert entry["loc"] == ["body"]
    assert entry["input"] == value


@attrs.define
class Palette:
    color: Color
    level: Level


def test_str_and_int_enums_in_a_body_are_validated_into_members() -> None:
    palette = body_structurer(Palette)({"color": "red", "level": 2})
    assert palette.color is Color.RED
    assert palette.level is Level.HIGH
    errors = structure_errors(Palette, {"color": "blue", "level": 7})
    assert [(e["type"], e["loc"], e["input"]) for e in errors] == [
        ("enum", ["body", "color"], "blue"),
        ("enum", ["body", "level"], 7),
    ]


def test_body_errors_are_fastapi_shaped_with_paths_into_the_document() -> None:
    value = {"item": {"name": 1, "tags": [{"label": "ok"}, {}]}, "quantity": "3"}
    errors = structure_errors(Order, value)
    assert errors == [
        {
            "type": "string_type",
            "loc": ["body", "item", "name"],
            "msg": "Input should be a valid string",
            "input": 1,
        },
        {
            "type": "missing",
            "loc": ["body", "item", "price"],
            "msg": "Field required",
            "input": {"name": 1, "tags": [{"label": "ok"}, {}]},
        },
        {
            "type": "missing",
            "loc": ["body", "item", "tags", 1, "label"],
            "msg": "Field required",
            "input": {},
        },
        {
            "type": "int_type",
            "loc": ["body", "quantity"],
            "msg": "Input should be a valid integer",
            "input": "3",
        },
    ]


def test_every_error_entry_has_exactly_the_fastapi_keys() -> None:
    for entry in structure_errors(Order, {"item": {"name": 1}, "quantity": []}):
        assert set(entry) <= {"type", "loc", "msg", "input", "ctx"}
        assert {"type", "loc", "msg", "input"} <= set(entry)


def test_list_item_errors_are_located_by_index() -> None:
    errors = structure_errors(list[int], [1, "x", 3, None])
    assert [(e["loc"], e["input"]) for e in errors] == [(["body", 1], "x"), (["body", 3], None)]


@pytest.mark.parametrize("value", ["abc", {"a": 1}])
def test_non_list_for_a_typed_list_is_a_list_type_error(value: Any) -> None:
    # A string or an object must not be iterated into a list of characters or keys.
    assert structure_errors(list[str], value) == [
        {
            "type": "list_type",
            "loc": ["body"],
            "msg": "Input should be a valid list",
            "input": value,
        }
    ]


def test_non_object_for_a_class_is_one_error_at_the_class_location() -> None:
    errors = structure_errors(Order, {"item": [1, 2], "quantity": 1})
    assert [(e["type"], e["loc"], e["input"]) for e in errors] == [
        ("model_attributes_type", ["body", "item"], [1, 2])
    ]


@pytest.mark.parametrize("value", [[1], "text", 5])
def test_non_object_body_for_a_class_is_one_error_at_the_body(value: Any) -> None:
    errors = structure_errors(Item, value)
    assert [(e["type"], e["loc"], e["input"]) for e in errors] == [
        ("model_attributes_type", ["body"], value)
    ]


def test_body_errors_are_rooted_at_the_given_location() -> None:
    errors = structure_errors(Tag, {})
    assert errors[0]["loc"] == ["body", "label"]
    with pytest.raises(Exception) as caught:  # noqa: PT011 - cattrs raises groups
        body_structurer(Tag)({})
    assert body_errors(caught.value, ["body", "tag"], {})[0]["loc"] == ["body", "tag", "label"]


# --- analyse: where each parameter comes from ----------------------------------------


def test_name_in_template_is_a_path_parameter() -> None:
    def read(item_id: int) -> None: ...

    field = field_named(analyse(read, frozenset({"item_id"})), "item_id")
    assert (field.source, field.key, field.required) == ("path", "item_id", True)
    assert field.convert is not None
    assert field.convert("3") == 3


def test_scalars_are_query_parameters_and_lists_only_when_marked() -> None:
    def search(
        q: str, limit: int = 10, tags: Annotated[list[str] | None, Query()] = None
    ) -> None: ...

    dependant = analyse(search)
    q, limit, tags = (field_named(dependant, n) for n in ("q", "limit", "tags"))
    assert [f.source for f in (q, limit, tags)] == ["query"] * 3
    assert q.default is REQUIRED
    assert limit.default == 10
    assert (tags.is_list, tags.default) == (True, None)
    assert dependant.body == ()


def test_an_unmarked_list_is_the_body_as_in_fastapi() -> None:
    def store(values: list[int]) -> None: ...

    dependant = analyse(store)
    assert dependant.fields == ()
    assert [field.name for field in dependant.body] == ["values"]


def test_optional_scalar_is_a_query_parameter_in_both_spellings() -> None:
    def a(q: Optional[int] = None) -> None: ...  # noqa: UP045 - both spellings on purpose

    def b(q: int | None = None) -> None: ...

    for call in (a, b):
        field = field_named(analyse(call), "q")
        assert (field.source, field.default) == ("query", None)
        assert field.convert is not None
        assert field.convert("4") == 4


@pytest.mark.parametrize("annotation_style", [True, False])
def test_markers_work_in_annotated_and_default_value_style(annotation_style: bool) -> None:
    if annotation_style:

        def call(
            q: Annotated[int, Query(alias="page-size")] = 5,
            user_agent: Annotated[str | None, Header()] = None,
            session: Annotated[str, Cookie()] = "anon",
            item: Annotated[Item, Body()] = ...,  # type: ignore[assignment]
        ) -> None: ...

    else:

        def call(  # type: ignore[misc]
            q: int = Query(5, alias="page-size"),
            user_agent: str | None = Header(None),
            session: str = Cookie("anon"),
            item: Item = Body(),  # noqa: B008 - the default-value style under test
        ) -> None: ...

    dependant = analyse(call)
    q, agent, session = dependant.fields
    assert (q.source, q.key, q.default) == ("query", "page-size", 5)
    assert (agent.source, agent.key, agent.default) == ("header", "user-agent", None)
    assert (session.source, session.key, session.default) == ("cookie", "session", "anon")
    [item] = dependant.body
    assert (item.source, item.key) == ("body", "item")


def test_header_names_convert_underscores_unless_told_not_to() -> None:
    def call(
        x_request_id: Annotated[str, Header()],
        raw_name: Annotated[str, Header(convert_underscores=False)],
        other: Annotated[str, Header(alias="X-Custom")],
        tokens: Annotated[list[str], Header()],
    ) -> None: ...

    keys = [(f.key, f.is_list) for f in analyse(call).fields]
    assert keys == [
        ("x-request-id", False),
        ("raw_name", False),
        ("x-custom", False),
        ("tokens", True),
    ]


def test_path_marker_reads_the_template_parameter() -> None:
    def call(item_id: Annotated[int, Path(ge=1)]) -> None: ...

    field = field_named(analyse(call, frozenset({"item_id"})), "item_id")
    assert field.source == "path"
    assert field.check is not None


@pytest.mark.parametrize(
    ("annotation", "raw"),
    [(Item, None), (dict, None), (list[Item], None), (dict[str, int], None)],
)
def test_structured_types_are_read_from_the_body(annotation: Any, raw: str | None) -> None:
    def call(payload: Any) -> None: ...

    call.__annotations__["payload"] = annotation
    [field] = analyse(call).body
    assert (field.source, field.key, field.raw) == ("body", "payload", raw)


def test_unmarked_bytes_is_a_query_parameter_as_in_fastapi() -> None:
    def call(data: bytes) -> None: ...

    field = field_named(analyse(call), "data")
    assert (field.source, field.raw) == ("query", None)


def test_bytes_marked_as_body_is_read_raw() -> None:
    def call(data: bytes = Body()) -> None: ...

    field = field_named(analyse(call), "data")
    assert (field.source, field.raw) == ("body", "bytes")


def test_str_body_is_read_as_text() -> None:
    def call(text: Annotated[str, Body()]) -> None: ...

    [field] = analyse(call).body
    assert field.raw == "text"


def test_single_body_is_bare_unless_embedded() -> None:
    def bare(item: Item) -> None: ...

    def embedded(item: Annotated[Item, Body(embed=True)]) -> None: ...

    assert analyse(bare).embed_body is False
    assert analyse(embedded).embed_body is True


def test_several_body_parameters_are_embedded_by_name() -> None:
    def call(item: Item, tag: Tag, importance: Annotated[int, Body()]) -> None: ...

    dependant = analyse(call)
    assert dependant.embed_body is True
    assert [f.key for f in dependant.body] == ["item", "tag", "importance"]


def test_request_response_and_background_tasks_are_injected() -> None:
    def call(req: Request, resp: Response, tasks: BackgroundTasks) -> None: ...

    dependant = analyse(call)
    assert dependant.specials == (
        ("req", Special.REQUEST),
        ("resp", Special.RESPONSE),
        ("tasks", Special.BACKGROUND),
    )
    assert dependant.fields == dependant.body == ()


def get_token(x_token: Annotated[str, Header()]) -> str:
    return x_token


def get_user(token: Annotated[str, Depends(get_token)], item: Item) -> str:
    return token


def test_depends_in_both_styles_records_a_sub_dependency() -> None:
    def call(
        a: Annotated[str, Depends(get_token)],
        b: str = Depends(get_token, use_cache=False),
    ) -> None: ...

    first, second = analyse(call).dependencies
    assert (first.name, first.use_cache, first.dependant.call) == ("a", True, get_token)
    assert (second.name, second.use_cache) == ("b", False)
    assert field_named(first.dependant, "x_token").key == "x-token"


def test_depends_without_argument_uses_the_annotated_class() -> None:
    def call(tag: Annotated[Tag, Depends()]) -> None: ...

    [sub] = analyse(call).dependencies
    assert sub.dependant.call is Tag
    assert field_named(sub.dependant, "label").source == "query"


def test_a_sub_dependency_body_makes_the_route_need_the_body() -> None:
    def call(user: Annotated[str, Depends(get_user)]) -> None: ...

    dependant = analyse(call)
    assert dependant.body == ()
    assert dependant.needs_body
    assert [f.name for f in dependant.all_fields()] == ["item", "x_token"]


def test_plain_callable_has_no_plan() -> None:
    def call() -> None: ...

    assert analyse(call).is_plain


def test_variadic_parameters_are_ignored() -> None:
    def call(q: int, *args: Any, **kwargs: Any) -> None: ...

    assert [f.name for f in analyse(call).fields] == ["q"]


async def an_async() -> None: ...


async def an_async_gen() -> AsyncIterator[int]:
    yield 1


def a_sync_gen() -> Iterator[int]:
    yield 1


class AsyncCallable:
    async def __call__(self) -> None: ...


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (an_async, CallKind.ASYNC),
        (an_async_gen, CallKind.ASYNC_GEN),
        (a_sync_gen, CallKind.SYNC_GEN),
        (get_token, CallKind.SYNC),
        (Tag, CallKind.SYNC),
        (AsyncCallable(), CallKind.ASYNC),
        (functools.partial(an_async), CallKind.ASYNC),
    ],
)
def test_call_kind_is_detected_once(call: Any, kind: CallKind) -> None:
    assert analyse(call).kind is kind


# --- analyse: mistakes are caught at registration --------------------------------------


def test_positional_only_parameter_is_refused() -> None:
    def call(q: int, /) -> None: ...

    with pytest.raises(RouteDefinitionError, match="'q' is positional-only") as caught:
        analyse(call)
    assert "Remove the '/'" in str(caught.value)
    assert "call" in str(caught.value)


def test_a_marker_in_annotated_and_another_as_the_default_are_refused() -> None:
    def split(q: Annotated[int, Query()] = Header()) -> None: ...  # type: ignore[assignment]

    with pytest.raises(
        RouteDefinitionError,
        match="Cannot specify TrioAPI annotations in `Annotated` and default value together "
        "for 'q'",
    ):
        analyse(split)


def test_several_markers_in_annotated_the_last_decides_and_constraints_add_up() -> None:
    def ranged(q: Annotated[int, Query(gt=2), Header(lt=10)]) -> None: ...

    field = field_named(analyse(ranged), "q")
    assert field.source == "header"
    assert field.check is not None
    field.check(5)
    for bad in (2, 10):
        with pytest.raises(ConversionError):
            field.check(bad)


def test_a_default_in_an_annotated_marker_is_refused() -> None:
    # FastAPI's rule and message: in Annotated, the default goes after '='.
    def both(q: Annotated[int, Query(3)] = 4) -> None: ...

    def marker_only(q: Annotated[int, Query(default=3)]) -> None: ...

    for call in (both, marker_only):
        with pytest.raises(
            RouteDefinitionError,
            match=re.escape(
                "`Query` default value cannot be set in `Annotated` for 'q'. Set the "
                "default value with `=` instead."
            ),
        ):
            analyse(call)


def test_path_parameter_missing_from_the_template_is_refused() -> None:
    def call(item_id: Annotated[int, Path()]) -> None: ...

    with pytest.raises(
        RouteDefinitionError, match="Path parameter 'item_id' does not appear in the route's path"
    ):
        analyse(call, frozenset({"id"}))


@pytest.mark.parametrize("marker", [Header(), Cookie()])
def test_header_or_cookie_that_a_string_cannot_build_is_refused(marker: Any) -> None:
    def call(q: Item) -> None: ...

    call.__annotations__["q"] = Annotated[Item, marker]
    with pytest.raises(RouteDefinitionError, match="cannot be built from a string") as caught:
        analyse(call)
    assert f"read from the {marker.source}" in str(caught.value)


@pytest.mark.parametrize(
    "annotation",
    [
        Item,
        dict[str, int],
        dict[str, int] | None,
        list[Item],
        tuple[Item, Item],
        list[dict[str, int]],
    ],
)
def test_query_value_a_url_cannot_carry_is_refused_in_fastapis_words(annotation: Any) -> None:
    def call(q: Any) -> None: ...

    call.__annotations__["q"] = Annotated[annotation, Query()]
    with pytest.raises(
        RouteDefinitionError, match="Query parameter 'q' must be one of the supported types"
    ) as caught:
        analyse(call)
    assert isinstance(caught.value, AssertionError)  # what FastAPI raises


@pytest.mark.parametrize("annotation", [list[Item], dict[str, int], set[int] | None])
def test_path_value_that_is_not_a_scalar_is_refused(annotation: Any) -> None:
    def call(item_id: Any) -> None: ...

    call.__annotations__["item_id"] = annotation
    with pytest.raises(
        RouteDefinitionError, match="Path parameter 'item_id' must be one of the supported types"
    ):
        analyse(call, frozenset({"item_id"}))


@pytest.mark.parametrize(
    "annotation", [list[int], tuple[int, ...], tuple[int, str], set[str] | None, frozenset[str]]
)
def test_query_lists_of_scalars_are_still_accepted(annotation: Any) -> None:
    def call(q: Any) -> None: ...

    call.__annotations__["q"] = Annotated[annotation, Query()]
    assert [field.source for field in analyse(call).fields] == ["query"]


def test_bytes_body_next_to_another_body_parameter_is_refused() -> None:
    def call(raw: Annotated[bytes, Body()], item: Item) -> None: ...

    with pytest.raises(RouteDefinitionError, match="must be the only body parameter"):
        analyse(call)


def test_unresolvable_annotation_is_refused_with_advice() -> None:
    def call(q: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(RouteDefinitionError, match="cannot read the annotations") as caught:
        analyse(call)
    assert "module level" in str(caught.value)


def test_depends_without_callable_on_any_is_refused() -> None:
    def call(x: Annotated[Any, Depends()]) -> None: ...

    with pytest.raises(RouteDefinitionError, match="needs a callable"):
        analyse(call)


def cycle_first(other: Annotated[int, Depends(cycle_second)]) -> int:
    return other


def cycle_second(back: Annotated[int, Depends(cycle_first)]) -> int:
    return back


def cycle_self(again: Annotated[int, Depends(cycle_self)]) -> int:
    return again


def test_dependency_cycle_is_refused_and_the_chain_named() -> None:
    with pytest.raises(RouteDefinitionError, match="dependency cycle") as caught:
        analyse(cycle_first)
    message = str(caught.value)
    assert message.count("cycle_first") == 2
    assert "cycle_second" in message
    assert message.index("cycle_first") < message.index("cycle_second")


def test_dependency_on_itself_is_a_cycle() -> None:
    with pytest.raises(RouteDefinitionError, match="dependency cycle"):
        analyse(cycle_self)


def token_twice(t: Annotated[str, Depends(get_token)]) -> str:
    return t


def test_shared_dependency_in_two_branches_is_not_a_cycle() -> None:
    def call(
        a: Annotated[str, Depends(token_twice)], b: Annotated[str, Depends(get_token)]
    ) -> None: ...

    assert len(analyse(call).dependencies) == 2


# --- registration on an app analyses at once ---------------------------------------------


def test_app_refuses_a_bad_signature_when_the_route_is_declared() -> None:
    app = TrioAPI()

    def read(item_id: Annotated[int, Path()]) -> None: ...

    with pytest.raises(RouteDefinitionError, match="'item_id' does not appear"):
        app.get("/items/{id}")(read)
    assert all(route.path != "/items/{id}" for route in app.routes)


def test_app_refuses_a_generator_endpoint_whose_response_class_cannot_stream() -> None:
    from trioapi.responses import PlainTextResponse

    def stream() -> Iterator[bytes]:
        yield b"x"

    with pytest.raises(TypeError, match="return a StreamingResponse"):
        TrioAPI().get("/stream", response_class=PlainTextResponse)(stream)


def test_app_refuses_a_bad_route_dependency_when_the_route_is_declared() -> None:
    def needs_dict(q: Annotated[dict[str, int], Query()]) -> None: ...

    def read() -> None: ...

    with pytest.raises(RouteDefinitionError, match="must be one of the supported types"):
        TrioAPI().get("/", dependencies=[Depends(needs_dict)])(read)


# --- annotations that only name things ------------------------------------------------


async def _numbers() -> int:
    return 123


Numbered = Annotated[int, Depends(_numbers)]


def test_a_dependencys_unresolvable_return_annotation_is_left_out() -> None:
    # A return type imported under TYPE_CHECKING: only the parameters are read.
    async def client(page: int = 1) -> Any:
        yield page

    client.__annotations__["return"] = "AsyncGenerator[Client, None]"
    dependant = analyse(client)
    assert [(field.name, field.annotation) for field in dependant.fields] == [("page", int)]


def test_an_unresolvable_parameter_annotation_is_still_refused() -> None:
    async def client(page: int = 1) -> None: ...

    client.__annotations__["page"] = "Missing"
    with pytest.raises(RouteDefinitionError, match="cannot read the annotations"):
        analyse(client)


def test_a_type_alias_is_read_as_what_it_names() -> None:
    from typing_extensions import TypeAliasType

    Value = TypeAliasType("Value", Numbered)
    Nested = TypeAliasType("Nested", Value)

    def endpoint(value: Any, other: Any) -> None: ...

    endpoint.__annotations__.update(value=Value, other=Nested)
    dependant = analyse(endpoint)
    assert [sub.dependant.call for sub in dependant.dependencies] == [_numbers, _numbers]
    assert dependant.fields == ()


@pytest.mark.parametrize("marker", [Query, Path, Header, Cookie, Body, Form])
def test_example_singular_is_deprecated_as_in_fastapi(marker: Any) -> None:
    from trioapi.exceptions import TrioAPIDeprecationWarning

    with pytest.warns(TrioAPIDeprecationWarning, match="`example` has been deprecated"):
        marker(example="x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        marker(examples=["x"])


def test_a_path_marker_with_a_default_is_refused() -> None:
    # A path parameter is always in the URL (FastAPI refuses this too).
    with pytest.raises(RouteDefinitionError, match="Path parameters cannot have a default value"):
        Path(1)
    with pytest.raises(RouteDefinitionError, match="Path parameters cannot have a default value"):
        Path(default=None)
    assert Path().default is Path(...).default


def _one() -> int:
    return 1


def test_depends_in_annotated_and_as_the_default_is_refused_in_fastapis_words() -> None:
    def twice(foo: Annotated[int, Depends(_one)] = Depends(_one)) -> None: ...

    def mixed(foo: Annotated[int, Query(min_length=1)] = Depends(_one)) -> None: ...

    with pytest.raises(
        RouteDefinitionError,
        match="Cannot specify `Depends` in `Annotated` and default value together for 'foo'",
    ):
        analyse(twice)
    with pytest.raises(
        RouteDefinitionError,
        match="Cannot specify a TrioAPI annotation in `Annotated` and `Depends` as a default "
        "value together for 'foo'",
    ):
        analyse(mixed)
