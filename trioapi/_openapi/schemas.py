"""JSON Schema for the values of an API, from the model libraries themselves (no I/O).

The document asks for the schema of each value it describes (a parameter, a
body, a response model) with :meth:`SchemaSet.add`, and of each model it makes
up (``Body_<operationId>``) with :meth:`SchemaSet.add_model`; then
:meth:`SchemaSet.generate` builds them all at once, so that models shared by
several values become one entry of ``components.schemas``, named as the
library names them, and :meth:`SchemaSet.get` hands each one back.

Which library writes a schema:

- **pydantic**, when it is installed, for every value it can validate:
  one ``GenerateJsonSchema.generate_definitions`` call over all values, in
  ``validation`` mode for what the client sends and ``serialization`` mode
  for what it gets back (or ``validation`` throughout when the app sets
  ``separate_input_output_schemas=False``, except for models with computed
  fields, which only exist in output). This is FastAPI's own way, so the
  schemas are FastAPI's.
- **msgspec** (``msgspec.json.schema_components``), when it is installed,
  for values pydantic cannot describe: attrs classes (pydantic does not
  know them), and everything when pydantic is not installed.
- neither: ``{}`` (any value), which is what the document can honestly say.

Nothing here imports pydantic or msgspec before :meth:`SchemaSet.generate`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib.util
import typing
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import attrs

from .._http import pydantic_engine

REF_PREFIX = "#/components/schemas/"
REF_TEMPLATE = REF_PREFIX + "{model}"

Mode = Literal["validation", "serialization"]
JSON = dict[str, Any]


@attrs.frozen(eq=False)
class Value:
    """One value to describe.

    Args:
        annotation: Its type, as the signature has it (``Annotated`` split off),
            or a :class:`Model` (a body that is one made-up model, with a default).
        mode: ``"validation"`` for input, ``"serialization"`` for output.
        field: Keywords for ``pydantic.Field`` (title, description, default,
            constraints, examples, json_schema_extra...).
        metadata: The other ``Annotated`` metadata of the signature.
        config: The pydantic config of the model the value belongs to.
    """

    annotation: Any
    mode: Mode = "validation"
    field: Mapping[str, Any] = attrs.field(factory=dict)
    metadata: tuple[Any, ...] = ()
    config: Any = None


@attrs.frozen
class FormPart:
    """How one parameter of a form body shows in its schema (FastAPI's layout).

    A form body whose parameters include form models is sent flat: every
    field of every model next to the plain fields. Its schema keeps the
    plain fields as properties (under their names in the form) and gives
    each model's schema as one condition of ``allOf``; an optional model
    (``Model | None``) is "its schema, or none of its fields sent".

    Args:
        name: The made-up model's field for the parameter (``field_0``...).
        alias: A plain field: its name in the form. None for a form model.
        required: The parameter has no default.
        nullable: A form model that may be left out (``Model | None``).
        absent: For a nullable form model, the schema of "not sent": no
            property at all when a model takes extra fields (``allow`` or
            ``forbid``), else none of its fields' names.
    """

    name: str
    alias: str | None
    required: bool
    nullable: bool = False
    absent: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(eq=False)
class Model:
    """A model the document makes up, such as ``Body_<operationId>``.

    ``fields`` holds ``(name, value)``; the value's ``field`` keywords give the
    alias and whether it is required (a ``default`` or ``default_factory``).
    ``form_parts``, when set, says that the model is a form body with form
    models in it, one part per field (see :class:`FormPart`).
    """

    name: str
    fields: tuple[tuple[str, Value], ...]
    mode: Mode = "validation"
    form_parts: tuple[FormPart, ...] = ()


@functools.cache
def msgspec_available() -> bool:
    """msgspec can be imported; checked without importing it."""
    return importlib.util.find_spec("msgspec") is not None


def _pydantic_can(annotation: Any) -> bool:
    return pydantic_engine.available() and not pydantic_engine.involves_attrs(annotation)


def _split_description(definitions: dict[str, JSON]) -> None:
    # A docstring's text after a form feed is for the code's readers, not the
    # API's: FastAPI keeps only what comes before it.
    for definition in definitions.values():
        description = definition.get("description")
        if isinstance(description, str) and "\f" in description:
            definition["description"] = description.split("\f")[0]


class SchemaSet:
    """The values of one document, and then their schemas.

    Args:
        separate_input_output_schemas: Describe output in ``serialization``
            mode (the default); False describes everything as input, as
            FastAPI's option of that name does.
    """

    def __init__(self, *, separate_input_output_schemas: bool = True) -> None:
        self.separate = separate_input_output_schemas
        self._items: list[Value | Model] = []
        self._schemas: dict[int, JSON] = {}
        self.definitions: dict[str, JSON] = {}

    def add(self, value: Value) -> int:
        """Registers ``value``; returns its handle for :meth:`get`."""
        self._items.append(value)
        return len(self._items) - 1

    def add_model(self, model: Model) -> int:
        """Registers a made-up model; returns its handle (its schema is a ``$ref``)."""
        self._items.append(model)
        return len(self._items) - 1

    def get(self, handle: int) -> JSON:
        """The schema of a registered value (a copy: callers may add a title)."""
        return dict(self._schemas[handle])

    def generate(self) -> None:
        """Builds every schema; call once, after the last ``add``."""
        by_pydantic: list[int] = []
        by_msgspec: list[int] = []
        for handle, item in enumerate(self._items):
            model = _made_up(item)
            annotations = (
                [value.annotation for _, value in model.fields]
                if model is not None
                else [typing.cast("Value", item).annotation]
            )
            if all(_pydantic_can(annotation) for annotation in annotations):
                by_pydantic.append(handle)
            elif msgspec_available():
                by_msgspec.append(handle)
            elif isinstance(item, Model):
                self._schemas[handle] = self._composed(item, {})
            else:
                self._schemas[handle] = {}
        if by_pydantic:
            self._generate_pydantic(by_pydantic)
        if by_msgspec:
            self._generate_msgspec(by_msgspec)
        for item in self._items:
            model = _made_up(item)
            if model is not None and model.form_parts:
                _lay_out_form(model, self.definitions.get(model.name))
        _split_description(self.definitions)

    # --- pydantic ---------------------------------------------------------------

    def _mode(self, item: Value | Model, core_schema: Any) -> Mode:
        if self.separate or item.mode == "validation":
            return item.mode
        return "serialization" if _has_computed_fields(item, core_schema) else "validation"

    def _generate_pydantic(self, handles: list[int]) -> None:
        from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

        inputs: list[tuple[int, Mode, Any]] = []
        built: dict[Any, Any] = {}  # values described alike share one core schema
        for handle in handles:
            item = self._items[handle]
            key = _cache_key(item)
            try:
                core_schema = built.get(key) if key is not None else None
                if core_schema is None:
                    core_schema = _core_schema(item)
                    if key is not None:
                        built[key] = core_schema
            except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
                # A type pydantic cannot describe (the route validates it some
                # other way): the document says "any value".
                self._schemas[handle] = {}
                continue
            inputs.append((handle, self._mode(item, core_schema), core_schema))
        generator = _generator_class()(ref_template=REF_TEMPLATE)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _unsupported_attribute_warning())
            mapping, definitions = generator.generate_definitions(inputs=inputs)
        for (handle, mode), schema in mapping.items():
            del mode
            self._schemas[handle] = dict(schema)
        self.definitions.update(typing.cast("dict[str, JSON]", definitions))

    # --- msgspec ----------------------------------------------------------------

    def _generate_msgspec(self, handles: list[int]) -> None:
        import msgspec

        types: list[Any] = []
        owners: list[tuple[int, str | None]] = []
        for handle in handles:
            item = self._items[handle]
            if isinstance(item, Value):
                types.append(_msgspec_type(item))
                owners.append((handle, None))
            else:
                for name, value in item.fields:
                    types.append(_msgspec_type(value))
                    owners.append((handle, name))
        try:
            schemas, components = msgspec.json.schema_components(
                types, ref_template=REF_TEMPLATE.replace("{model}", "{name}")
            )
        except (TypeError, ValueError):
            schemas = tuple({} for _ in types)
            components = {}
        fields: dict[int, dict[str, JSON]] = {}
        for (handle, member), schema in zip(owners, schemas, strict=True):
            if member is None:
                self._schemas[handle] = dict(schema)
            else:
                fields.setdefault(handle, {})[member] = dict(schema)
        for handle, field_schemas in fields.items():
            model = self._items[handle]
            assert isinstance(model, Model)
            self._schemas[handle] = self._composed(model, field_schemas)
        for name, schema in components.items():
            self.definitions.setdefault(name, schema)

    def _composed(self, model: Model, field_schemas: Mapping[str, JSON]) -> JSON:
        """A made-up model written out from its fields' schemas, as pydantic would."""
        properties: JSON = {}
        required: list[str] = []
        for name, value in model.fields:
            key = value.field.get("alias") or name
            schema = dict(field_schemas.get(name, {}))
            if "$ref" not in schema:
                schema.setdefault("title", value.field.get("title") or _title(key))
            if "default" in value.field:
                schema["default"] = value.field["default"]
            elif "default_factory" not in value.field:
                required.append(key)
            properties[key] = schema
        definition: JSON = {"properties": properties, "title": model.name, "type": "object"}
        if required:
            definition["required"] = required
        self.definitions[model.name] = definition
        return {"$ref": REF_PREFIX + model.name}


def _made_up(item: Value | Model) -> Model | None:
    """The made-up model an item describes: the item itself, or the type of a value."""
    if isinstance(item, Model):
        return item
    return item.annotation if isinstance(item.annotation, Model) else None


def _lay_out_form(model: Model, definition: JSON | None) -> None:
    """A form body with form models: plain fields as properties, each model as a condition."""
    if definition is None:
        return
    schemas: JSON = definition.pop("properties", {})
    definition.pop("required", None)
    properties: JSON = {}
    required: list[str] = []
    conditions: list[JSON] = []
    for part in model.form_parts:
        schema = dict(schemas.get(part.name, {}))
        if part.alias is not None:
            if part.alias in properties:
                # Two parameters read the same name: the second is a condition.
                conditions.append({"properties": {part.alias: schema}})
            else:
                properties[part.alias] = schema
            if part.required and part.alias not in required:
                required.append(part.alias)
            continue
        schema.pop("default", None)
        if part.nullable:
            # Left out by sending none of its fields, not by a null body.
            schema["anyOf"] = [
                choice for choice in schema.get("anyOf", ()) if choice.get("type") != "null"
            ]
            absent = dict(part.absent)
            if part.required:
                conditions.append({"not": absent})
            else:
                schema = {"anyOf": [absent, schema]}
        conditions.append(schema)
    if properties:
        definition["properties"] = properties
    if required:
        definition["required"] = required
    definition["allOf"] = conditions


def form_model_annotation(model: Any, renames: Mapping[str, Sequence[str]]) -> Any:
    """A form model whose schema names its fields as the form does.

    ``renames`` maps the name the model's schema gives a field to the names
    it is read under in a form, in preference order (``AliasChoices``, or
    the field's name where the model validates by name). Only this form's
    schema changes: the model's own entry in ``components`` stays as it is.
    """
    from pydantic import GetPydanticSchema

    hook = functools.partial(_form_model_schema, renames=dict(renames))
    return Annotated[model, GetPydanticSchema(get_pydantic_json_schema=hook)]


def _form_model_schema(core_schema: Any, handler: Any, *, renames: Mapping[str, Any]) -> JSON:
    schema: JSON = handler(core_schema)
    resolved: JSON = handler.resolve_ref_schema(schema)
    properties = resolved.get("properties", {})
    required = resolved.get("required", [])
    used = {
        name: list(names)
        for name, names in renames.items()
        if name in properties and (names[0] != name or (len(names) > 1 and name in required))
    }
    if not used:
        return schema
    inline = copy.deepcopy(resolved)
    inline["properties"] = {
        used.get(name, [name])[0]: value for name, value in inline["properties"].items()
    }
    inline["required"] = []
    for name in required:
        names = used.get(name, [name])
        if len(names) == 1:
            inline["required"].append(names[0])
        else:
            # Any one of its names will do.
            inline.setdefault("allOf", []).append(
                {"anyOf": [{"required": [choice]} for choice in names]}
            )
    return inline


def _cache_key(item: Value | Model) -> Any:
    if isinstance(item, Model):
        return None
    try:
        key = (item.annotation, tuple(sorted(item.field.items())), item.metadata, id(item.config))
        hash(key)
    except TypeError:
        return None
    return key


def _title(name: str) -> str:
    return name.title().replace("_", " ")


def _annotated(value: Value) -> Any:
    from pydantic import Field

    extra: tuple[Any, ...] = value.metadata
    if value.field:
        extra = (*extra, Field(**value.field))
    return Annotated[(value.annotation, *extra)] if extra else value.annotation


def _core_schema(item: Value | Model) -> Any:
    from pydantic import TypeAdapter

    with warnings.catch_warnings():
        # A Field() keyword meant for model fields (an alias, "deprecated") has
        # no effect on a bare value; it is documentation here.
        warnings.simplefilter("ignore", _unsupported_attribute_warning())
        if isinstance(item, Model):
            return TypeAdapter(_made_up_model(item)).core_schema
        if isinstance(item.annotation, Model):
            value = attrs.evolve(item, annotation=_made_up_model(item.annotation))
            return TypeAdapter(_annotated(value)).core_schema
        config = item.config if _takes_config(item.annotation) else None
        return TypeAdapter(_annotated(item), config=config).core_schema


def _made_up_model(model: Model) -> Any:
    from pydantic import Field, create_model

    definitions: dict[str, Any] = {}
    for name, value in model.fields:
        annotation = (
            Annotated[(value.annotation, *value.metadata)] if value.metadata else value.annotation
        )
        definitions[name] = (annotation, Field(**value.field))
    return create_model(model.name, **definitions)


def _takes_config(annotation: Any) -> bool:
    # pydantic refuses a config for a type that has its own.
    if not isinstance(annotation, type):
        return True
    return not (
        pydantic_engine.is_pydantic_model(annotation)
        or dataclasses.is_dataclass(annotation)
        or typing.is_typeddict(annotation)
        or issubclass(annotation, dict)
    )


def _has_computed_fields(item: Value | Model, core_schema: Any) -> bool:
    """The value's models have ``@computed_field`` s, which exist only in output."""
    del item
    stack: list[Any] = [core_schema]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            if node.get("computed_fields"):
                return True
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


@functools.cache
def _unsupported_attribute_warning() -> type[Warning]:
    try:
        from pydantic.warnings import UnsupportedFieldAttributeWarning
    except ImportError:  # pydantic < 2.12
        return UserWarning
    return UnsupportedFieldAttributeWarning


@functools.cache
def _generator_class() -> Any:
    from pydantic.json_schema import GenerateJsonSchema

    class Generator(GenerateJsonSchema):
        """pydantic's generator, with bytes written as OpenAPI 3.1 says.

        pydantic writes ``format: binary``, an OpenAPI 3.0 idiom; 3.1 (JSON
        Schema 2020-12) says ``contentMediaType``, and base64 bodies say
        ``contentEncoding`` (what FastAPI writes too).
        """

        def bytes_schema(self, schema: Any) -> Any:
            json_schema: JSON = {
                "type": "string",
                "contentMediaType": "application/octet-stream",
            }
            config = self._config
            mode = config.ser_json_bytes if self.mode == "serialization" else config.val_json_bytes
            if mode == "base64":
                json_schema["contentEncoding"] = "base64"
            self.update_with_validations(json_schema, schema, self.ValidationsMapping.bytes)
            return json_schema

    return Generator


# --- msgspec -------------------------------------------------------------------------

_MSGSPEC_META = (
    "gt",
    "ge",
    "lt",
    "le",
    "multiple_of",
    "pattern",
    "min_length",
    "max_length",
    "title",
    "description",
    "examples",
)


def _msgspec_type(value: Value) -> Any:
    """The value's type with its documented constraints as ``msgspec.Meta``."""
    import msgspec

    meta = {key: value.field[key] for key in _MSGSPEC_META if value.field.get(key) is not None}
    extra = value.field.get("json_schema_extra")
    if isinstance(extra, dict):
        meta["extra_json_schema"] = extra
    annotation = _without_unknown(value.annotation)
    return Annotated[annotation, msgspec.Meta(**meta)] if meta else annotation


def _without_unknown(annotation: Any) -> Any:
    # msgspec describes the types it validates; trioapi's UploadFile is not one.
    from .._http.uploads import UploadFile

    if isinstance(annotation, type) and issubclass(annotation, UploadFile):
        return Annotated[
            bytes,
            __import__("msgspec").Meta(
                extra_json_schema={"contentMediaType": "application/octet-stream"}
            ),
        ]
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if not args or origin is None or origin is Annotated or origin is Literal:
        return annotation
    replaced = tuple(_without_unknown(arg) for arg in args)
    if replaced == args:
        return annotation
    if origin in (typing.Union, __import__("types").UnionType):
        return functools.reduce(lambda left, right: left | right, replaced)
    try:
        return origin[replaced]
    except TypeError:
        return annotation


def title_for(name: str) -> str:
    """A schema title from a name, as pydantic and FastAPI write it (``user_id`` → ``User Id``)."""
    return _title(name)
