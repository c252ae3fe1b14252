"""``jsonable_encoder``: FastAPI's results, type by type.

The expected values are FastAPI 0.165's for the same input. The first part
needs only the standard library and attrs; the tests that need pydantic ask
for the ``pydantic`` fixture, which skips them when it is not installed.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import math
import re
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from decimal import Decimal
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any, TypedDict

import attrs
import pytest

from trioapi.encoders import PydanticV1NotSupportedError, jsonable_encoder


class Person:
    def __init__(self, name: str) -> None:
        self.name = name


class Pet:
    def __init__(self, owner: Person, name: str) -> None:
        self.owner = owner
        self.name = name


class DictablePerson(Person):
    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.__dict__.items())


class DictablePet(Pet):
    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.__dict__.items())


class Unserializable:
    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        raise NotImplementedError


@dataclasses.dataclass
class Item:
    name: str
    count: int


@dataclasses.dataclass
class Box:
    item: Item
    extra: Any = None


@attrs.define
class Point:
    x: int
    y: int


@attrs.define(slots=False)
class Segment:
    start: Point
    end: Point
    label: str | None = None


class Role(enum.Enum):
    admin = "admin"
    normal = "normal"


class Level(enum.IntEnum):
    low = 1


class Shade(enum.StrEnum):
    dark = "dark"


PET = {"name": "Firulais", "owner": {"name": "Foo"}}


# --- dicts, include and exclude ----------------------------------------------


def test_dict_is_encoded_and_filtered_by_include_and_exclude() -> None:
    assert jsonable_encoder(PET) == {"name": "Firulais", "owner": {"name": "Foo"}}
    assert jsonable_encoder(PET, include={"name"}) == {"name": "Firulais"}
    assert jsonable_encoder(PET, exclude={"owner"}) == {"name": "Firulais"}
    assert jsonable_encoder(PET, include={}) == {}
    assert jsonable_encoder(PET, exclude={}) == PET


def test_include_and_exclude_accept_any_iterable_of_names() -> None:
    assert jsonable_encoder(PET, include=["name"]) == {"name": "Firulais"}  # type: ignore[arg-type]
    assert jsonable_encoder(PET, exclude=("owner",)) == {"name": "Firulais"}  # type: ignore[arg-type]
    assert jsonable_encoder(PET, include=[]) == {}  # type: ignore[arg-type]
    assert jsonable_encoder(PET, exclude=[]) == PET  # type: ignore[arg-type]
    assert jsonable_encoder(PET, include={"name": True}) == {"name": "Firulais"}


def test_include_applies_to_the_top_level_dict_only() -> None:
    data = {"a": {"a": 1, "b": 2}, "b": 1}
    assert jsonable_encoder(data, include={"a"}) == {"a": {"a": 1, "b": 2}}


def test_include_applies_to_each_item_of_a_list() -> None:
    data = [{"a": 1, "b": 2}, {"a": 3, "c": 4}]
    assert jsonable_encoder(data, include={"a"}) == [{"a": 1}, {"a": 3}]
    assert jsonable_encoder(data, exclude={"a"}) == [{"b": 2}, {"c": 4}]


def test_dict_keys_are_encoded_too() -> None:
    data = {1: "int", None: "none", datetime.date(2020, 1, 1): "date", Role.admin: "enum"}
    assert jsonable_encoder(data) == {1: "int", None: "none", "2020-01-01": "date", "admin": "enum"}


def test_an_unhashable_encoded_key_raises_type_error() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        jsonable_encoder({(1, 2): "tuple keys become lists"})


def test_dict_subclasses_and_mappings_become_plain_dicts() -> None:
    assert jsonable_encoder(collections.OrderedDict(a=1)) == {"a": 1}
    assert jsonable_encoder(collections.defaultdict(int, a=1)) == {"a": 1}
    assert jsonable_encoder(collections.Counter("aab")) == {"a": 2, "b": 1}
    assert jsonable_encoder(types.MappingProxyType({"a": 1, "b": 2}), exclude={"b"}) == {"a": 1}


def test_sqlalchemy_state_keys_are_dropped_at_every_depth() -> None:
    data = {"_sa_instance_state": object(), "_sb": 1, "inner": {"_sa_x": 1, "y": 2}, 5: 5}
    assert jsonable_encoder(data) == {"_sb": 1, "inner": {"y": 2}, 5: 5}


def test_sqlalchemy_safe_false_keeps_sa_keys() -> None:
    assert jsonable_encoder({"_sa_x": 1}, sqlalchemy_safe=False) == {"_sa_x": 1}


def test_exclude_none_drops_none_values_of_dicts_at_every_depth() -> None:
    data = {"a": None, "b": {"c": None, "d": 1}, "e": [None, {"f": None}]}
    assert jsonable_encoder(data, exclude_none=True) == {"b": {"d": 1}, "e": [None, {}]}
    assert jsonable_encoder(data) == data


def test_exclude_defaults_and_unset_do_not_filter_plain_dicts() -> None:
    assert jsonable_encoder({"a": 0}, exclude_defaults=True, exclude_unset=True) == {"a": 0}


# --- objects, dataclasses, attrs ---------------------------------------------


def test_object_is_encoded_from_its_attributes() -> None:
    pet = Pet(owner=Person(name="Foo"), name="Firulais")
    assert jsonable_encoder(pet) == {"name": "Firulais", "owner": {"name": "Foo"}}
    assert jsonable_encoder(pet, include={"name"}) == {"name": "Firulais"}
    assert jsonable_encoder(pet, exclude={"owner"}) == {"name": "Firulais"}
    assert jsonable_encoder(pet, include={}) == {}
    assert jsonable_encoder(pet, exclude={}) == PET


def test_object_convertible_with_dict_is_encoded_from_its_pairs() -> None:
    pet = DictablePet(owner=DictablePerson(name="Foo"), name="Firulais")
    assert jsonable_encoder(pet) == PET
    assert jsonable_encoder(pet, include={"name"}) == {"name": "Firulais"}
    assert jsonable_encoder(pet, exclude={"owner"}) == {"name": "Firulais"}
    assert jsonable_encoder(map(tuple, ["ab", "cd"])) == {"a": "b", "c": "d"}


def test_dataclass_is_encoded_from_its_fields() -> None:
    item = Item(name="foo", count=100)
    assert jsonable_encoder(item) == {"name": "foo", "count": 100}
    assert jsonable_encoder(item, include={"name"}) == {"name": "foo"}
    assert jsonable_encoder(item, exclude={"count"}) == {"name": "foo"}
    assert jsonable_encoder(item, include={}) == {}
    assert jsonable_encoder(item, exclude={}) == {"name": "foo", "count": 100}


def test_nested_dataclass_is_encoded_and_none_fields_can_be_left_out() -> None:
    box = Box(item=Item(name="foo", count=1), extra=(Item(name="bar", count=2), None))
    assert jsonable_encoder(box) == {
        "item": {"name": "foo", "count": 1},
        "extra": [{"name": "bar", "count": 2}, None],
    }
    assert jsonable_encoder(Box(item=Item("a", 1)), exclude_none=True) == {
        "item": {"name": "a", "count": 1}
    }


def test_custom_encoder_does_not_see_nested_dataclasses() -> None:
    # dataclasses.asdict turns nested dataclasses into dicts first (FastAPI does too).
    box = Box(item=Item(name="foo", count=1))
    encoded = jsonable_encoder(box, custom_encoder={Item: lambda _: "item"})
    assert encoded == {"item": {"name": "foo", "count": 1}, "extra": None}
    assert jsonable_encoder(box.item, custom_encoder={Item: lambda _: "item"}) == "item"


def test_dataclass_class_itself_is_refused() -> None:
    with pytest.raises(TypeError, match="pass an instance"):
        jsonable_encoder(Item)


def test_attrs_instance_is_encoded_from_its_fields() -> None:
    assert jsonable_encoder(Point(1, 2)) == {"x": 1, "y": 2}
    assert jsonable_encoder(Point(1, 2), include={"x"}) == {"x": 1}
    assert jsonable_encoder(Point(1, 2), exclude=["x"]) == {"y": 2}  # type: ignore[arg-type]


def test_nested_attrs_instances_are_encoded_with_options() -> None:
    segment = Segment(Point(0, 1), Point(2, 3))
    assert jsonable_encoder(segment) == {
        "start": {"x": 0, "y": 1},
        "end": {"x": 2, "y": 3},
        "label": None,
    }
    assert jsonable_encoder(segment, exclude_none=True, exclude={"start"}) == {
        "end": {"x": 2, "y": 3}
    }
    encoded = jsonable_encoder(segment, custom_encoder={Point: lambda p: [p.x, p.y]})
    assert encoded == {"start": [0, 1], "end": [2, 3], "label": None}


def test_unencodable_object_raises_value_error_with_both_attempts() -> None:
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - FastAPI raises a bare ValueError
        jsonable_encoder(Unserializable())
    [errors] = caught.value.args
    assert [type(error) for error in errors] == [NotImplementedError, NotImplementedError]
    assert isinstance(caught.value.__cause__, NotImplementedError)
    assert "custom_encoder={Unserializable: ...}" in caught.value.__notes__[0]


@pytest.mark.parametrize("value", [object(), 1j, bytearray(b"a")])
def test_objects_without_attributes_are_unencodable(value: object) -> None:
    with pytest.raises(ValueError, match="vars"):
        jsonable_encoder(value)


# --- scalars -----------------------------------------------------------------


def test_str_int_float_bool_none_pass_through_unchanged() -> None:
    class Name(str):
        pass

    name = Name("x")
    assert jsonable_encoder(name) is name
    assert jsonable_encoder(True) is True
    assert jsonable_encoder(None) is None
    assert jsonable_encoder(1.5) == 1.5
    assert math.isnan(jsonable_encoder(float("nan")))


def test_enum_member_becomes_its_value_unencoded() -> None:
    class Day(enum.Enum):
        first = datetime.date(2020, 1, 1)

    assert jsonable_encoder(Role.admin) == "admin"
    assert jsonable_encoder(Level.low) == 1
    assert type(jsonable_encoder(Level.low)) is int
    assert jsonable_encoder(Shade.dark) == "dark"
    assert type(jsonable_encoder(Shade.dark)) is str
    assert jsonable_encoder(Day.first) == datetime.date(2020, 1, 1)


def test_paths_become_strings() -> None:
    assert jsonable_encoder({"path": PurePosixPath("/foo", "bar")}) == {"path": "/foo/bar"}
    assert jsonable_encoder(PureWindowsPath("/foo", "bar")) == "\\foo\\bar"
    assert jsonable_encoder(PurePath("/foo")) == str(PurePath("/foo"))
    assert jsonable_encoder(Path("relative/file.txt")) == str(Path("relative/file.txt"))


def test_dates_and_times_become_isoformat() -> None:
    moment = datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    assert jsonable_encoder(moment) == "2020-01-02T03:04:05.000006+00:00"
    assert jsonable_encoder(datetime.datetime(2019, 1, 1, 8)) == "2019-01-01T08:00:00"
    assert jsonable_encoder(datetime.date(2020, 1, 1)) == "2020-01-01"
    assert jsonable_encoder(datetime.time(1, 2, 3)) == "01:02:03"


def test_timedelta_becomes_total_seconds() -> None:
    assert jsonable_encoder(datetime.timedelta(days=1, microseconds=5)) == 86400.000005
    assert jsonable_encoder(datetime.timedelta(minutes=-1)) == -60.0


def test_decimal_becomes_int_when_whole_else_float() -> None:
    assert jsonable_encoder({"value": Decimal(2)}) == {"value": 2}
    assert jsonable_encoder(Decimal("1E+2")) == 100
    assert type(jsonable_encoder(Decimal("10"))) is int
    assert jsonable_encoder({"value": Decimal.from_float(1.23)}) == {"value": 1.23}
    assert jsonable_encoder(Decimal("1.0")) == 1.0
    assert type(jsonable_encoder(Decimal("1.0"))) is float


def test_decimal_nan_and_infinity_become_floats() -> None:
    assert math.isnan(jsonable_encoder(Decimal("NaN")))
    assert jsonable_encoder(Decimal("Infinity")) == math.inf
    assert jsonable_encoder(Decimal("-Infinity")) == -math.inf


def test_uuid_ip_and_pattern_become_strings() -> None:
    assert jsonable_encoder(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert jsonable_encoder(
        [ip_address("1.2.3.4"), ip_network("10.0.0.0/8"), ip_interface("::1/128")]
    ) == ["1.2.3.4", "10.0.0.0/8", "::1/128"]
    assert jsonable_encoder(re.compile("a+")) == "a+"


def test_bytes_are_decoded_as_utf8() -> None:
    assert jsonable_encoder(b"caf\xc3\xa9") == "café"
    with pytest.raises(UnicodeDecodeError):
        jsonable_encoder(b"\xff")


def test_collections_and_generators_become_lists() -> None:
    pair = collections.namedtuple("pair", "a b")
    assert jsonable_encoder((1, (2, 3))) == [1, [2, 3]]
    assert jsonable_encoder({3, 1, 2}) == sorted({3, 1, 2})
    assert jsonable_encoder(frozenset([1])) == [1]
    assert jsonable_encoder(collections.deque([1, (2,)])) == [1, [2]]
    assert jsonable_encoder(i * 2 for i in range(3)) == [0, 2, 4]
    assert jsonable_encoder(pair(1, 2)) == [1, 2]


def test_typed_dict_is_a_dict() -> None:
    class Row(TypedDict):
        when: datetime.date

    assert jsonable_encoder(Row(when=datetime.date(2020, 1, 1))) == {"when": "2020-01-01"}


# --- custom_encoder ----------------------------------------------------------


def test_custom_encoder_matches_exact_type_first() -> None:
    encoders = {datetime.date: lambda _: "date", datetime.datetime: lambda _: "datetime"}
    assert jsonable_encoder(datetime.datetime(2020, 1, 1), custom_encoder=encoders) == "datetime"


def test_custom_encoder_then_matches_in_mapping_order_by_isinstance() -> None:
    class Moment(datetime.datetime):
        pass

    encoders = {datetime.date: lambda _: "date", datetime.datetime: lambda _: "datetime"}
    # Not the most specific class: the first key that matches, as FastAPI does.
    assert jsonable_encoder(Moment(2020, 1, 1), custom_encoder=encoders) == "date"


def test_custom_encoder_applies_to_subclass_inside_a_typed_dict() -> None:
    class SafeDatetime(datetime.datetime):
        pass

    class Row(TypedDict):
        dt_field: SafeDatetime

    row = Row(dt_field=SafeDatetime(2020, 1, 1, 8, 30, 15))
    by_subclass = jsonable_encoder(
        row, custom_encoder={SafeDatetime: lambda o: o.strftime("%H:%M")}
    )
    by_base = jsonable_encoder(row, custom_encoder={datetime.datetime: lambda o: o.strftime("%S")})
    assert by_subclass == {"dt_field": "08:30"}
    assert by_base == {"dt_field": "15"}
    assert jsonable_encoder(row) == {"dt_field": "2020-01-01T08:30:15"}


def test_custom_encoder_applies_to_keys_items_and_enums() -> None:
    assert jsonable_encoder({1: 1}, custom_encoder={int: str}) == {"1": "1"}
    assert jsonable_encoder([1, (2,)], custom_encoder={int: str}) == ["1", ["2"]]
    assert jsonable_encoder(Role.admin, custom_encoder={Role: lambda r: r.value.upper()}) == "ADMIN"


def test_custom_encoder_accepts_a_tuple_of_types() -> None:
    encoders = {(int, float): lambda _: "number"}
    assert jsonable_encoder([1, 2.5, "x"], custom_encoder=encoders) == ["number", "number", "x"]


# --- pydantic ----------------------------------------------------------------


@pytest.fixture
def pydantic() -> Any:
    return pytest.importorskip("pydantic")


def test_pydantic_model_is_dumped_in_json_mode(pydantic: Any) -> None:
    class Model(pydantic.BaseModel):
        when: datetime.datetime
        ids: set[int]
        price: Decimal

    model = Model(when=datetime.datetime(2020, 1, 1), ids={1}, price=Decimal("1.5"))
    # pydantic's JSON mode, not ours: the Decimal becomes a string.
    assert jsonable_encoder(model) == {"when": "2020-01-01T00:00:00", "ids": [1], "price": "1.5"}


def test_pydantic_model_uses_aliases_unless_told_otherwise(pydantic: Any) -> None:
    class Model(pydantic.BaseModel):
        foo: str = pydantic.Field(alias="Foo")

    assert jsonable_encoder(Model(Foo="Bar")) == {"Foo": "Bar"}
    assert jsonable_encoder(Model(Foo="Bar"), by_alias=False) == {"foo": "Bar"}


def test_pydantic_model_exclude_unset_defaults_include_exclude(pydantic: Any) -> None:
    class Model(pydantic.BaseModel):
        foo: str
        bar: str = "bar"
        bla: str = "bla"

    model = Model(foo="foo", bar="bar")
    assert jsonable_encoder(model) == {"foo": "foo", "bar": "bar", "bla": "bla"}
    assert jsonable_encoder(model, exclude_unset=True) == {"foo": "foo", "bar": "bar"}
    assert jsonable_encoder(model, exclude_defaults=True) == {"foo": "foo"}
    assert jsonable_encoder(model, exclude_unset=True, exclude_defaults=True) == {"foo": "foo"}
    assert jsonable_encoder(model, include={"foo"}) == {"foo": "foo"}
    assert jsonable_encoder(model, include=["foo"]) == {"foo": "foo"}  # type: ignore[arg-type]
    assert jsonable_encoder(model, exclude={"bla"}) == {"foo": "foo", "bar": "bar"}
    assert jsonable_encoder(model, include={}) == {}
    assert jsonable_encoder(model, exclude={}) == {"foo": "foo", "bar": "bar", "bla": "bla"}


def test_pydantic_options_reach_models_inside_lists_and_dicts(pydantic: Any) -> None:
    class Model(pydantic.BaseModel):
        foo: str
        bar: str = "bar"

    model = Model(foo="foo")
    assert jsonable_encoder([model], exclude_defaults=True) == [{"foo": "foo"}]
    assert jsonable_encoder({"key": model}, exclude_defaults=True) == {"key": {"foo": "foo"}}
    assert jsonable_encoder({"key": [model]}, exclude_defaults=True) == {"key": [{"foo": "foo"}]}
    assert jsonable_encoder({"key": model}) == {"key": {"foo": "foo", "bar": "bar"}}
    assert jsonable_encoder(collections.deque([model]))[0]["foo"] == "foo"


def test_pydantic_nested_include_mapping(pydantic: Any) -> None:
    class Inner(pydantic.BaseModel):
        a: int = 1
        b: int = 2

    class Outer(pydantic.BaseModel):
        inner: Inner
        items: list[Inner]

    outer = Outer(inner=Inner(), items=[Inner(), Inner()])
    include: dict[str, Any] = {"inner": {"a"}, "items": {0: {"b"}}}
    assert jsonable_encoder(outer, include=include) == {"inner": {"a": 1}, "items": [{"b": 2}]}


def test_pydantic_model_config_and_field_serializer_are_honoured(pydantic: Any) -> None:
    class WithEnumValues(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(use_enum_values=True)
        role: Role | None = None

    class WithSerializer(pydantic.BaseModel):
        dt_field: datetime.datetime

        @pydantic.field_serializer("dt_field")
        def serialize_dt_field(self, dt: datetime.datetime) -> str:
            return dt.replace(microsecond=0, tzinfo=datetime.UTC).isoformat()

    class Subclass(WithSerializer):
        pass

    assert jsonable_encoder(WithEnumValues(role=Role.admin)) == {"role": "admin"}
    expected = {"dt_field": "2019-01-01T08:00:00+00:00"}
    assert jsonable_encoder(WithSerializer(dt_field=datetime.datetime(2019, 1, 1, 8))) == expected
    assert jsonable_encoder(Subclass(dt_field=datetime.datetime(2019, 1, 1, 8))) == expected


def test_pydantic_model_output_drops_none_and_sa_keys(pydantic: Any) -> None:
    class Model(pydantic.BaseModel):
        state: int = pydantic.Field(1, alias="_sa_state")
        data: dict[str, int | None] = pydantic.Field(
            default_factory=lambda: {"kept": 1, "gone": None}
        )

    assert jsonable_encoder(Model()) == {"data": {"kept": 1, "gone": None}}
    assert jsonable_encoder(Model(), exclude_none=True) == {"data": {"kept": 1}}
    assert jsonable_encoder(Model(), sqlalchemy_safe=False) == {
        "_sa_state": 1,
        "data": {"kept": 1, "gone": None},
    }


def test_custom_encoder_is_not_applied_inside_pydantic_models(pydantic: Any) -> None:
    class Model(pydantic.BaseModel):
        n: int = 1

    assert jsonable_encoder(Model(), custom_encoder={int: str}) == {"n": 1}
    assert jsonable_encoder(Model(), custom_encoder={Model: lambda _: "model"}) == "model"


@pytest.mark.parametrize("path_type", [PurePath, PurePosixPath, PureWindowsPath])
def test_pydantic_model_with_pure_path_field(pydantic: Any, path_type: type[PurePath]) -> None:
    class Model(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        path: path_type  # type: ignore[valid-type]

    path = path_type("/foo", "bar")
    assert jsonable_encoder(Model(path=path)) == {"path": str(path)}


def test_pydantic_dataclass_is_a_dataclass(pydantic: Any) -> None:
    @pydantic.dataclasses.dataclass
    class Thing:
        name: str

    assert jsonable_encoder(Thing(name="x"), include={"name"}) == {"name": "x"}


def test_pydantic_undefined_becomes_none(pydantic: Any) -> None:
    from pydantic_core import PydanticUndefined

    assert jsonable_encoder({"value": PydanticUndefined}) == {"value": None}


def test_pydantic_secret_url_and_email_types_become_strings(pydantic: Any) -> None:
    from pydantic_core import Url

    assert jsonable_encoder(pydantic.SecretStr("hidden")) == "**********"
    assert jsonable_encoder(pydantic.SecretBytes(b"hidden")) == "b'**********'"
    assert jsonable_encoder(pydantic.AnyUrl("http://example.com")) == "http://example.com/"
    assert (
        jsonable_encoder(pydantic.HttpUrl("http://example.com/a?b=1")) == "http://example.com/a?b=1"
    )
    assert jsonable_encoder(Url("https://x.org")) == "https://x.org/"
    assert jsonable_encoder(pydantic.NameEmail("John", "j@example.com")) == "John <j@example.com>"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pydantic_color_becomes_its_name_or_hex(pydantic: Any) -> None:
    from pydantic.color import Color

    assert jsonable_encoder({"color": Color("blue")}) == {"color": "blue"}
    assert jsonable_encoder(Color((1, 2, 3))) == "#010203"


def test_pydantic_extra_types_color_encodes_with_str(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for pydantic_extra_types.color (not a test dependency): a
    # class of that module encodes as str(value) once the module is imported.
    class Color:
        def __str__(self) -> str:
            return "red"

    module = types.ModuleType("pydantic_extra_types.color")
    module.Color = Color  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pydantic_extra_types.color", module)
    assert jsonable_encoder({"color": Color()}) == {"color": "red"}


def test_pydantic_v1_model_is_refused(pydantic: Any) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from pydantic import v1

    class Legacy(v1.BaseModel):
        name: str

    with pytest.raises(PydanticV1NotSupportedError, match=r"port the model .* to pydantic v2"):
        jsonable_encoder(Legacy(name="test"))


def test_pydantic_v1_model_in_a_routes_responses_is_refused_at_definition(pydantic: Any) -> None:
    import warnings

    from trioapi import TrioAPI

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from pydantic import v1

    class LegacyError(v1.BaseModel):
        detail: str

    app = TrioAPI()
    with pytest.raises(PydanticV1NotSupportedError, match="the 400 response model of route"):
        app.get("/", responses={400: {"model": LegacyError}})(lambda: None)


@pytest.mark.parametrize("model", ["plain", "list of plain"])
def test_a_response_model_in_responses_that_is_no_model_is_refused(
    model: str, pydantic: Any
) -> None:
    # With pydantic, the models it cannot describe (without it, any class is
    # returned as it is, in responses= as in response_model=).
    from trioapi import RouteDefinitionError, TrioAPI

    class Plain:
        pass

    app = TrioAPI()
    declared = Plain if model == "plain" else list[Plain]
    with pytest.raises(RouteDefinitionError, match="the 500 response model of route '/' cannot"):
        app.get("/", responses={500: {"model": declared}})(lambda: None)


# --- pydantic stays optional -------------------------------------------------

_NO_PYDANTIC_SCRIPT = """
import sys, datetime, decimal, uuid, dataclasses
import trioapi.encoders
from trioapi.encoders import jsonable_encoder

@dataclasses.dataclass
class D:
    x: object

jsonable_encoder([D(datetime.date(2020, 1, 1)), decimal.Decimal("1.5"), uuid.uuid4(), b"x", {1, 2}])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"pydantic", "pydantic_core"})
print(loaded)
"""


def test_importing_and_using_encoders_does_not_import_pydantic() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _NO_PYDANTIC_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
