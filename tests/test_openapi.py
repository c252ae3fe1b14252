"""The OpenAPI document and the docs pages, equal to FastAPI 0.165's for the same app.

Each ``*_DOCUMENT`` below is the document FastAPI 0.165.0 wrote for the app
code of the ``make_*_app`` above it (the same code, ``fastapi`` spelled
``trioapi``), kept here as a literal: the test is that trioapi writes the same.
Nothing in this module uses ``from __future__ import annotations``: the apps'
models are local classes, and their annotations must stay objects.
"""

import hashlib
import json
from typing import Annotated, Any

import attrs
import hypothesis
import pytest
from hypothesis import strategies as st

pytest.importorskip("pydantic")  # the documents here are built from pydantic models

from pydantic import BaseModel, Field

import trioapi.testing
from trioapi import (
    APIRouter,
    Body,
    Depends,
    File,
    Form,
    Header,
    Path,
    Query,
    Security,
    TrioAPI,
    UploadFile,
)
from trioapi._openapi import assets
from trioapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from trioapi.openapi.utils import get_openapi
from trioapi.security import APIKeyHeader, OAuth2PasswordBearer
from trioapi.testclient import TestClient

REF = "#/components/schemas/"

# --- documents equal to FastAPI's -----------------------------------------------------


def make_basic_app() -> TrioAPI:
    app = TrioAPI(
        title="Shop",
        version="2.0",
        summary="A small shop",
        description="Sells **things**.",
        terms_of_service="https://example.com/terms/",
        contact={"name": "Ops", "email": "ops@example.com"},
        license_info={"name": "MIT", "identifier": "MIT"},
        servers=[{"url": "https://api.example.com", "description": "Production"}],
        openapi_tags=[{"name": "items", "description": "Items on sale"}],
    )

    class Item(BaseModel):
        name: str = Field(description="What it is called")
        price: float = Field(gt=0)
        tags: list[str] = []

    class Message(BaseModel):
        detail: str

    @app.get("/items/{item_id}", tags=["items"], responses={404: {"model": Message}})
    def read_item(
        item_id: Annotated[int, Path(ge=1, title="The item")],
        q: Annotated[str | None, Query(max_length=20, description="Search")] = None,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> Item:
        """Reads one item.

        It must exist.
        \f
        Not for the docs.
        """
        return Item(name="x", price=1)

    @app.post("/items/", status_code=201, tags=["items"], summary="Add an item")
    def create_item(item: Item) -> Item:
        return item

    @app.delete(
        "/items/{item_id}", deprecated=True, status_code=204, openapi_extra={"x-audit": True}
    )
    def delete_item(item_id: int) -> None:
        return None

    @app.get("/hidden", include_in_schema=False)
    def hidden() -> dict[str, str]:
        return {}

    router = APIRouter(prefix="/users", tags=["users"], responses={418: {"description": "Teapot"}})

    @router.get("/me", operation_id="who_am_i")
    def me() -> dict[str, str]:
        return {}

    app.include_router(router)
    return app


BASIC_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Shop",
        "summary": "A small shop",
        "description": "Sells **things**.",
        "termsOfService": "https://example.com/terms/",
        "contact": {"name": "Ops", "email": "ops@example.com"},
        "license": {"name": "MIT", "identifier": "MIT"},
        "version": "2.0",
    },
    "servers": [{"url": "https://api.example.com", "description": "Production"}],
    "paths": {
        "/items/{item_id}": {
            "get": {
                "tags": ["items"],
                "summary": "Read Item",
                "description": "Reads one item.\n\nIt must exist.",
                "operationId": "read_item_items__item_id__get",
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "title": "The item"},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "anyOf": [{"type": "string", "maxLength": 20}, {"type": "null"}],
                            "description": "Search",
                            "title": "Q",
                        },
                        "description": "Search",
                    },
                    {
                        "name": "x-request-id",
                        "in": "header",
                        "required": False,
                        "schema": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "title": "X-Request-Id",
                        },
                    },
                ],
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {"$ref": REF + "Item"}}},
                    },
                    "404": {
                        "content": {"application/json": {"schema": {"$ref": REF + "Message"}}},
                        "description": "Not Found",
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            },
            "delete": {
                "summary": "Delete Item",
                "operationId": "delete_item_items__item_id__delete",
                "deprecated": True,
                "parameters": [
                    {
                        "name": "item_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "title": "Item Id"},
                    }
                ],
                "responses": {
                    "204": {"description": "Successful Response"},
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
                "x-audit": True,
            },
        },
        "/items/": {
            "post": {
                "tags": ["items"],
                "summary": "Add an item",
                "operationId": "create_item_items__post",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": REF + "Item"}}},
                    "required": True,
                },
                "responses": {
                    "201": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {"$ref": REF + "Item"}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        },
        "/users/me": {
            "get": {
                "tags": ["users"],
                "summary": "Me",
                "operationId": "who_am_i",
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "additionalProperties": {"type": "string"},
                                    "type": "object",
                                    "title": "Response Who Am I",
                                }
                            }
                        },
                    },
                    "418": {"description": "Teapot"},
                },
            }
        },
    },
    "components": {
        "schemas": {
            "HTTPValidationError": {
                "properties": {
                    "detail": {
                        "items": {"$ref": REF + "ValidationError"},
                        "type": "array",
                        "title": "Detail",
                    }
                },
                "type": "object",
                "title": "HTTPValidationError",
            },
            "Item": {
                "properties": {
                    "name": {"type": "string", "title": "Name", "description": "What it is called"},
                    "price": {"type": "number", "exclusiveMinimum": 0.0, "title": "Price"},
                    "tags": {
                        "items": {"type": "string"},
                        "type": "array",
                        "title": "Tags",
                        "default": [],
                    },
                },
                "type": "object",
                "required": ["name", "price"],
                "title": "Item",
            },
            "Message": {
                "properties": {"detail": {"type": "string", "title": "Detail"}},
                "type": "object",
                "required": ["detail"],
                "title": "Message",
            },
            "ValidationError": {
                "properties": {
                    "loc": {
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "type": "array",
                        "title": "Location",
                    },
                    "msg": {"type": "string", "title": "Message"},
                    "type": {"type": "string", "title": "Error Type"},
                    "input": {"title": "Input"},
                    "ctx": {"type": "object", "title": "Context"},
                },
                "type": "object",
                "required": ["loc", "msg", "type"],
                "title": "ValidationError",
            },
        }
    },
    "tags": [{"name": "items", "description": "Items on sale"}],
}


def make_bodies_app() -> TrioAPI:
    app = TrioAPI()

    class User(BaseModel):
        name: str

    @app.put("/profile")
    def update(
        user: User,
        importance: Annotated[int, Body(gt=0)],
        note: Annotated[str | None, Body()] = None,
    ):
        return {}

    @app.post("/embed")
    def embed(user: Annotated[User, Body(embed=True)]):
        return {}

    @app.post("/login")
    def login(username: Annotated[str, Form()], password: Annotated[str, Form(min_length=8)]):
        return {}

    @app.post("/upload")
    async def upload(
        file: UploadFile, raw: Annotated[bytes, File()], comment: Annotated[str, Form()] = ""
    ):
        return {}

    return app


BODIES_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "TrioAPI", "version": "0.1.0"},
    "paths": {
        "/profile": {
            "put": {
                "summary": "Update",
                "operationId": "update_profile_put",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": REF + "Body_update_profile_put"}}
                    },
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        },
        "/embed": {
            "post": {
                "summary": "Embed",
                "operationId": "embed_embed_post",
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": REF + "Body_embed_embed_post"}}
                    },
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        },
        "/login": {
            "post": {
                "summary": "Login",
                "operationId": "login_login_post",
                "requestBody": {
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {"$ref": REF + "Body_login_login_post"}
                        }
                    },
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        },
        "/upload": {
            "post": {
                "summary": "Upload",
                "operationId": "upload_upload_post",
                "requestBody": {
                    "content": {
                        "multipart/form-data": {"schema": {"$ref": REF + "Body_upload_upload_post"}}
                    },
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Body_embed_embed_post": {
                "properties": {"user": {"$ref": REF + "User"}},
                "type": "object",
                "required": ["user"],
                "title": "Body_embed_embed_post",
            },
            "Body_login_login_post": {
                "properties": {
                    "username": {"type": "string", "title": "Username"},
                    "password": {"type": "string", "minLength": 8, "title": "Password"},
                },
                "type": "object",
                "required": ["username", "password"],
                "title": "Body_login_login_post",
            },
            "Body_update_profile_put": {
                "properties": {
                    "user": {"$ref": REF + "User"},
                    "importance": {
                        "type": "integer",
                        "exclusiveMinimum": 0.0,
                        "title": "Importance",
                    },
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Note"},
                },
                "type": "object",
                "required": ["user", "importance"],
                "title": "Body_update_profile_put",
            },
            "Body_upload_upload_post": {
                "properties": {
                    "file": {
                        "type": "string",
                        "contentMediaType": "application/octet-stream",
                        "title": "File",
                    },
                    "raw": {
                        "type": "string",
                        "contentMediaType": "application/octet-stream",
                        "title": "Raw",
                    },
                    "comment": {"type": "string", "title": "Comment", "default": ""},
                },
                "type": "object",
                "required": ["file", "raw"],
                "title": "Body_upload_upload_post",
            },
            "HTTPValidationError": {
                "properties": {
                    "detail": {
                        "items": {"$ref": REF + "ValidationError"},
                        "type": "array",
                        "title": "Detail",
                    }
                },
                "type": "object",
                "title": "HTTPValidationError",
            },
            "User": {
                "properties": {"name": {"type": "string", "title": "Name"}},
                "type": "object",
                "required": ["name"],
                "title": "User",
            },
            "ValidationError": {
                "properties": {
                    "loc": {
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "type": "array",
                        "title": "Location",
                    },
                    "msg": {"type": "string", "title": "Message"},
                    "type": {"type": "string", "title": "Error Type"},
                    "input": {"title": "Input"},
                    "ctx": {"type": "object", "title": "Context"},
                },
                "type": "object",
                "required": ["loc", "msg", "type"],
                "title": "ValidationError",
            },
        }
    },
}


def make_secure_app() -> TrioAPI:
    app = TrioAPI()
    api_key = APIKeyHeader(name="X-API-Key", description="Your key")
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"read": "Read things"})

    def current_user(token: Annotated[str, Security(oauth2, scopes=["read"])]) -> str:
        return token

    @app.get("/things")
    def things(key: Annotated[str, Depends(api_key)], user: Annotated[str, Depends(current_user)]):
        return {}

    return app


SECURE_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "TrioAPI", "version": "0.1.0"},
    "paths": {
        "/things": {
            "get": {
                "summary": "Things",
                "operationId": "things_things_get",
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    }
                },
                "security": [{"APIKeyHeader": []}, {"OAuth2PasswordBearer": ["read"]}],
            }
        }
    },
    "components": {
        "securitySchemes": {
            "APIKeyHeader": {
                "type": "apiKey",
                "description": "Your key",
                "in": "header",
                "name": "X-API-Key",
            },
            "OAuth2PasswordBearer": {
                "type": "oauth2",
                "flows": {"password": {"scopes": {"read": "Read things"}, "tokenUrl": "token"}},
            },
        }
    },
}


def make_shared_app() -> TrioAPI:
    app = TrioAPI(separate_input_output_schemas=False)

    class Note(BaseModel):
        text: str
        pinned: bool = False

    @app.post("/notes")
    def add(note: Note) -> Note:
        return note

    @app.webhooks.post("note-added")
    def note_added(note: Note):
        """Sent when a note is added."""

    return app


SHARED_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "TrioAPI", "version": "0.1.0"},
    "paths": {
        "/notes": {
            "post": {
                "summary": "Add",
                "operationId": "add_notes_post",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": REF + "Note"}}},
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {"$ref": REF + "Note"}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        }
    },
    "webhooks": {
        "note-added": {
            "post": {
                "summary": "Note Added",
                "description": "Sent when a note is added.",
                "operationId": "note_addednote_added_post",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": REF + "Note"}}},
                    "required": True,
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        }
    },
    "components": {
        "schemas": {
            "HTTPValidationError": {
                "properties": {
                    "detail": {
                        "items": {"$ref": REF + "ValidationError"},
                        "type": "array",
                        "title": "Detail",
                    }
                },
                "type": "object",
                "title": "HTTPValidationError",
            },
            "Note": {
                "properties": {
                    "text": {"type": "string", "title": "Text"},
                    "pinned": {"type": "boolean", "title": "Pinned", "default": False},
                },
                "type": "object",
                "required": ["text"],
                "title": "Note",
            },
            "ValidationError": {
                "properties": {
                    "loc": {
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "type": "array",
                        "title": "Location",
                    },
                    "msg": {"type": "string", "title": "Message"},
                    "type": {"type": "string", "title": "Error Type"},
                    "input": {"title": "Input"},
                    "ctx": {"type": "object", "title": "Context"},
                },
                "type": "object",
                "required": ["loc", "msg", "type"],
                "title": "ValidationError",
            },
        }
    },
}


def make_callbacks_app() -> TrioAPI:
    app = TrioAPI()

    class Invoice(BaseModel):
        id: str
        total: float

    class InvoiceEvent(BaseModel):
        description: str
        paid: bool

    class InvoiceEventReceived(BaseModel):
        ok: bool

    callbacks = APIRouter()

    @callbacks.post("/invoices/{id}", response_model=InvoiceEventReceived)
    def invoice_notification(body: InvoiceEvent):
        pass

    @app.post("/invoices/", callbacks=callbacks.routes)
    def create_invoice(invoice: Invoice, callback_url: str | None = None):
        """Create an invoice."""
        return {"msg": "Invoice received"}

    return app


CALLBACKS_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "TrioAPI", "version": "0.1.0"},
    "paths": {
        "/invoices/": {
            "post": {
                "summary": "Create Invoice",
                "description": "Create an invoice.",
                "operationId": "create_invoice_invoices__post",
                "parameters": [
                    {
                        "name": "callback_url",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "title": "Callback Url",
                        },
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": REF + "Invoice"}}},
                },
                "callbacks": {
                    "invoice_notification": {
                        "/invoices/{id}": {
                            "post": {
                                "summary": "Invoice Notification",
                                "operationId": "invoice_notification_invoices__id__post",
                                "requestBody": {
                                    "required": True,
                                    "content": {
                                        "application/json": {
                                            "schema": {"$ref": REF + "InvoiceEvent"}
                                        }
                                    },
                                },
                                "responses": {
                                    "200": {
                                        "description": "Successful Response",
                                        "content": {
                                            "application/json": {
                                                "schema": {"$ref": REF + "InvoiceEventReceived"}
                                            }
                                        },
                                    },
                                    "422": {
                                        "description": "Validation Error",
                                        "content": {
                                            "application/json": {
                                                "schema": {"$ref": REF + "HTTPValidationError"}
                                            }
                                        },
                                    },
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "422": {
                        "description": "Validation Error",
                        "content": {
                            "application/json": {"schema": {"$ref": REF + "HTTPValidationError"}}
                        },
                    },
                },
            }
        }
    },
    "components": {
        "schemas": {
            "HTTPValidationError": {
                "properties": {
                    "detail": {
                        "items": {"$ref": REF + "ValidationError"},
                        "type": "array",
                        "title": "Detail",
                    }
                },
                "type": "object",
                "title": "HTTPValidationError",
            },
            "Invoice": {
                "properties": {
                    "id": {"type": "string", "title": "Id"},
                    "total": {"type": "number", "title": "Total"},
                },
                "type": "object",
                "required": ["id", "total"],
                "title": "Invoice",
            },
            "InvoiceEvent": {
                "properties": {
                    "description": {"type": "string", "title": "Description"},
                    "paid": {"type": "boolean", "title": "Paid"},
                },
                "type": "object",
                "required": ["description", "paid"],
                "title": "InvoiceEvent",
            },
            "InvoiceEventReceived": {
                "properties": {"ok": {"type": "boolean", "title": "Ok"}},
                "type": "object",
                "required": ["ok"],
                "title": "InvoiceEventReceived",
            },
            "ValidationError": {
                "properties": {
                    "loc": {
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "type": "array",
                        "title": "Location",
                    },
                    "msg": {"type": "string", "title": "Message"},
                    "type": {"type": "string", "title": "Error Type"},
                    "input": {"title": "Input"},
                    "ctx": {"type": "object", "title": "Context"},
                },
                "type": "object",
                "required": ["loc", "msg", "type"],
                "title": "ValidationError",
            },
        }
    },
}


@pytest.mark.parametrize(
    ("make_app", "expected"),
    [
        pytest.param(make_basic_app, BASIC_DOCUMENT, id="params-models-metadata"),
        pytest.param(make_bodies_app, BODIES_DOCUMENT, id="bodies-forms-files"),
        pytest.param(make_secure_app, SECURE_DOCUMENT, id="security-schemes"),
        pytest.param(make_shared_app, SHARED_DOCUMENT, id="shared-schemas-webhooks"),
        pytest.param(make_callbacks_app, CALLBACKS_DOCUMENT, id="callbacks"),
    ],
)
def test_document_equals_fastapis(make_app: Any, expected: dict[str, Any]) -> None:
    assert make_app().openapi() == expected


def test_get_openapi_describes_the_routes_it_is_given() -> None:
    app = make_basic_app()
    document = get_openapi(title="Subset", version="1", routes=app.routes[-1:])
    assert document["info"] == {"title": "Subset", "version": "1"}
    assert list(document["paths"]) == ["/users/me"]
    assert document["paths"]["/users/me"]["get"]["operationId"] == "who_am_i"


def test_duplicate_operation_ids_warn() -> None:
    app = TrioAPI()

    @app.get("/a", operation_id="same")
    def first() -> None: ...

    @app.get("/b", operation_id="same")
    def second() -> None: ...

    with pytest.warns(UserWarning, match="Duplicate Operation ID same for function second"):
        app.openapi()


def test_custom_unique_ids_name_the_operation_and_its_body_model() -> None:
    app = TrioAPI(generate_unique_id_function=lambda route: f"{route.tags[0]}-{route.name}")

    @app.post("/items", tags=["items"])
    def create(name: Annotated[str, Body()], size: Annotated[int, Body()]) -> None: ...

    operation = app.openapi()["paths"]["/items"]["post"]
    assert operation["operationId"] == "items-create"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": REF + "Body_items-create"}


# --- what FastAPI does not have: attrs models, through msgspec ---------------------------


@attrs.define
class Pet:
    name: str
    legs: int = 4


def test_attrs_models_are_described_by_msgspec() -> None:
    pytest.importorskip("msgspec")  # an optional dependency: trioapi[openapi]
    app = TrioAPI()

    @app.post("/pets")
    def add_pet(pet: Pet) -> None: ...

    document = app.openapi()
    body = document["paths"]["/pets"]["post"]["requestBody"]
    assert body == {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF + "Pet"}}},
    }
    assert document["components"]["schemas"]["Pet"] == {
        "title": "Pet",
        "type": "object",
        "properties": {"name": {"type": "string"}, "legs": {"type": "integer", "default": 4}},
        "required": ["name"],
    }


# --- serving the document and the pages --------------------------------------------------


async def test_the_app_serves_its_document_and_the_docs_pages() -> None:
    app = make_basic_app()
    async with trioapi.testing.TestClient(app) as client:
        document = await client.get("/openapi.json")
        docs = await client.get("/docs")
        redirect = await client.get("/docs/oauth2-redirect")
        redoc = await client.get("/redoc")
    assert document.status_code == 200
    assert document.headers["content-type"] == "application/json"
    assert document.json() == BASIC_DOCUMENT
    assert docs.status_code == 200
    assert docs.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Shop - Swagger UI</title>" in docs.text
    assert "url: '/openapi.json'," in docs.text
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'," in docs.text
    assert "swagger-ui-dist" in docs.text
    assert "window.opener.swaggerUIRedirectOauth2" in redirect.text
    assert "<title>Shop - ReDoc</title>" in redoc.text
    assert '<redoc spec-url="/openapi.json"></redoc>' in redoc.text


async def test_docs_urls_set_to_none_are_not_served() -> None:
    app = TrioAPI(docs_url=None, redoc_url=None)
    async with trioapi.testing.TestClient(app) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/docs/oauth2-redirect")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404
    quiet = TrioAPI(openapi_url=None)
    async with trioapi.testing.TestClient(quiet) as client:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (await client.get(path)).status_code == 404


async def test_the_apps_dependencies_do_not_guard_its_docs() -> None:
    def needs_key(x_key: Annotated[str, Header()]) -> None: ...

    app = TrioAPI(dependencies=[Depends(needs_key)])

    @app.get("/data")
    def data() -> dict[str, int]:
        return {}

    async with trioapi.testing.TestClient(app) as client:
        assert (await client.get("/data")).status_code == 422
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200


def test_root_path_is_the_first_server_and_prefixes_the_pages() -> None:
    app = TrioAPI(servers=[{"url": "https://api.example.com"}])
    with TestClient(app, root_path="/api/v1") as client:
        document = client.get("/openapi.json").json()
        docs = client.get("/docs").text
    assert document["servers"] == [{"url": "/api/v1"}, {"url": "https://api.example.com"}]
    assert app.openapi()["servers"] == [{"url": "https://api.example.com"}]
    assert "url: '/api/v1/openapi.json'," in docs


def test_the_document_is_built_once_and_again_after_new_routes() -> None:
    app = TrioAPI()

    @app.get("/a")
    def a() -> None: ...

    first = app.openapi()
    assert app.openapi() is first
    assert app.openapi_schema is first

    @app.get("/b")
    def b() -> None: ...

    assert set(app.openapi()["paths"]) == {"/a", "/b"}


def test_a_document_stored_by_the_app_is_served_as_it_is() -> None:
    app = TrioAPI()
    app.openapi_schema = {"openapi": "3.1.0", "info": {"title": "Mine", "version": "0"}}
    with TestClient(app) as client:
        assert client.get("/openapi.json").json()["info"]["title"] == "Mine"


def test_page_values_cannot_close_the_script_element() -> None:
    page = get_swagger_ui_html(
        openapi_url="/o'.json",
        title="T",
        init_oauth={"appName": "</script><script>alert(1)</script>"},
        swagger_ui_parameters={"x": "<b>"},
    ).body.decode()
    assert "</script><script>" not in page
    assert "\\u003c/script\\u003e" in page
    assert "url: '/o\\'.json'," in page
    assert '"dom_id": "#swagger-ui",' in page
    redoc = get_redoc_html(openapi_url="/o.json", title="T", with_google_fonts=False)
    assert "fonts.googleapis.com" not in redoc.body.decode()


def test_the_document_is_json() -> None:
    for make_app in (make_basic_app, make_bodies_app, make_secure_app, make_shared_app):
        document = make_app().openapi()
        assert json.loads(json.dumps(document)) == document


# --- the schema says what validation enforces ---------------------------------------------


def _accepts(schema: dict[str, Any], value: Any) -> bool:
    """The few JSON Schema keywords the bounded parameters below use."""
    if schema.get("type") == "integer":
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        return not ("exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"])
    length = len(value)
    if "minLength" in schema and length < schema["minLength"]:
        return False
    return not ("maxLength" in schema and length > schema["maxLength"])


def make_bounded_app() -> TrioAPI:
    app = TrioAPI()

    @app.get("/bounded")
    def bounded(
        n: Annotated[int, Query(gt=-3, le=7)],
        word: Annotated[str, Query(min_length=2, max_length=5)],
    ) -> None: ...

    @app.post("/bounded")
    def bounded_body(
        n: Annotated[int, Body(ge=0, lt=10)], word: Annotated[str, Body(max_length=3)]
    ) -> None: ...

    return app


BOUNDED = make_bounded_app()
BOUNDED_CLIENT = TestClient(BOUNDED)


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    document = BOUNDED.openapi()
    query = {
        param["name"]: param["schema"]
        for param in document["paths"]["/bounded"]["get"]["parameters"]
    }
    body = document["components"]["schemas"]["Body_bounded_body_bounded_post"]["properties"]
    return query, body


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(n=st.integers(-10, 15), word=st.text(st.characters(codec="ascii"), max_size=8))
def test_the_schema_accepts_exactly_what_validation_accepts(n: int, word: str) -> None:
    query, body = _schemas()
    expected = _accepts(query["n"], n) and _accepts(query["word"], word)
    response = BOUNDED_CLIENT.get("/bounded", params={"n": str(n), "word": word})
    assert (response.status_code == 200) == expected, response.text
    expected = _accepts(body["n"], n) and _accepts(body["word"], word)
    response = BOUNDED_CLIENT.post("/bounded", json={"n": n, "word": word})
    assert (response.status_code == 200) == expected, response.text


# --- the pages work offline ----------------------------------------------------------------


async def test_the_pages_load_bundled_assets_served_by_the_app() -> None:
    app = TrioAPI()
    async with trioapi.testing.TestClient(app) as client:
        docs = (await client.get("/docs")).text
        redoc = (await client.get("/redoc")).text
        bundle = await client.get(f"/docs/{assets.SWAGGER_UI}/swagger-ui-bundle.js")
        css = await client.get(f"/docs/{assets.SWAGGER_UI}/swagger-ui.css")
        redoc_js = await client.get(f"/redoc/{assets.REDOC}/redoc.standalone.js")
    assert "https://" not in docs
    assert "https://" not in redoc
    assert f'src="/docs/{assets.SWAGGER_UI}/swagger-ui-bundle.js"' in docs
    assert f'src="/redoc/{assets.REDOC}/redoc.standalone.js"' in redoc
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (assets.ROOT / "SHA256SUMS").read_text().splitlines()
    )
    for name, response in (
        (f"{assets.SWAGGER_UI}/swagger-ui-bundle.js", bundle),
        (f"{assets.SWAGGER_UI}/swagger-ui.css", css),
        (f"{assets.REDOC}/redoc.standalone.js", redoc_js),
    ):
        assert hashlib.sha256(response.content).hexdigest() == sums[name]


async def test_cdn_assets_are_an_option() -> None:
    app = TrioAPI(docs_assets="cdn")
    async with trioapi.testing.TestClient(app) as client:
        docs = (await client.get("/docs")).text
        redoc = (await client.get("/redoc")).text
        missing = await client.get(f"/docs/{assets.SWAGGER_UI}/swagger-ui-bundle.js")
    assert "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js" in docs
    assert "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js" in redoc
    assert missing.status_code == 404


def test_the_bundled_assets_ship_with_their_licences() -> None:
    for folder in (assets.SWAGGER_UI, assets.REDOC):
        assert (assets.ROOT / folder / "LICENSE").is_file()


def test_an_overridden_openapi_method_is_what_the_app_serves() -> None:
    # docs/openapi.md, "To change the document".
    app = make_basic_app()

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(title="Shop", version="2.0", routes=app.routes)
        document["info"]["x-logo"] = {"url": "/logo.png"}
        app.openapi_schema = document
        return document

    app.openapi = custom_openapi  # type: ignore[method-assign]
    with TestClient(app) as client:
        info = client.get("/openapi.json").json()["info"]
    assert info == {"title": "Shop", "version": "2.0", "x-logo": {"url": "/logo.png"}}


# --- form models that may be left out, in unions, or several in one form ------------------
# Each schema below is what FastAPI 0.165.0 writes for the same app.


def _form_body(app: TrioAPI, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The operation's ``requestBody`` and the schema its ``$ref`` names."""
    document = app.openapi()
    body = document["paths"][path]["post"]["requestBody"]
    schema = next(iter(body["content"].values()))["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    return body, document["components"]["schemas"][name]


class FormProfile(BaseModel):
    name: str
    age: int = 0


PROFILE_ABSENT = {"not": {"anyOf": [{"required": ["age"]}, {"required": ["name"]}]}}
PROFILE_REF = {"anyOf": [{"$ref": "#/components/schemas/FormProfile"}], "title": "Profile"}


def test_an_optional_form_model_is_its_schema_or_none_of_its_fields() -> None:
    app = TrioAPI()

    @app.post("/")
    def submit(profile: Annotated[FormProfile | None, Form()] = None) -> None: ...

    body, schema = _form_body(app, "/")
    assert body == {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": "#/components/schemas/Body_submit__post"}
            }
        }
    }
    assert schema == {
        "allOf": [{"anyOf": [PROFILE_ABSENT, PROFILE_REF]}],
        "type": "object",
        "title": "Body_submit__post",
    }


def test_a_required_nullable_form_model_must_send_one_of_its_fields() -> None:
    app = TrioAPI()

    @app.post("/")
    def submit(profile: Annotated[FormProfile | None, Form()]) -> None: ...

    body, schema = _form_body(app, "/")
    assert body["required"] is True
    assert schema == {
        "allOf": [{"not": PROFILE_ABSENT}, PROFILE_REF],
        "type": "object",
        "title": "Body_submit__post",
    }


def test_an_optional_form_model_taking_extras_is_left_out_by_an_empty_form() -> None:
    from pydantic import ConfigDict

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str

    app = TrioAPI()

    @app.post("/")
    def submit(
        token: Annotated[str, Form()], strict: Annotated[Strict | None, Form()] = None
    ) -> None: ...

    body, schema = _form_body(app, "/")
    assert body["required"] is True
    assert schema == {
        "allOf": [
            {
                "anyOf": [
                    {"maxProperties": 0},
                    {"anyOf": [{"$ref": "#/components/schemas/Strict"}], "title": "Strict"},
                ]
            }
        ],
        "properties": {"token": {"type": "string", "title": "Token"}},
        "type": "object",
        "required": ["token"],
        "title": "Body_submit__post",
    }


def test_an_optional_form_models_alias_choices_are_its_names_in_the_form() -> None:
    from pydantic import AliasChoices

    class Aliased(BaseModel):
        code: Annotated[str, Field(validation_alias=AliasChoices("code", "c"))]
        note: str = ""

    app = TrioAPI()

    @app.post("/")
    def submit(aliased: Annotated[Aliased | None, Form()] = None) -> None: ...

    _, schema = _form_body(app, "/")
    inline = {
        "allOf": [{"anyOf": [{"required": ["code"]}, {"required": ["c"]}]}],
        "properties": {
            "code": {"type": "string", "title": "Code"},
            "note": {"type": "string", "title": "Note", "default": ""},
        },
        "type": "object",
        "required": [],
        "title": "Aliased",
    }
    absent = {"not": {"anyOf": [{"required": [name]} for name in ("c", "code", "note")]}}
    assert schema == {
        "allOf": [{"anyOf": [absent, {"anyOf": [inline], "title": "Aliased"}]}],
        "type": "object",
        "title": "Body_submit__post",
    }
    # The model's own entry keeps pydantic's schema: only this form renames.
    assert app.openapi()["components"]["schemas"]["Aliased"]["required"] == ["code"]


def test_an_optional_union_of_form_models_leaves_null_out() -> None:
    from typing import Literal

    class Text(BaseModel):
        kind: Literal["text"]

    class Number(BaseModel):
        kind: Literal["number"]
        value: int

    app = TrioAPI()

    @app.post("/")
    def submit(item: Annotated[Text | Number | None, Form()] = None) -> None: ...

    _, schema = _form_body(app, "/")
    absent = {"not": {"anyOf": [{"required": ["kind"]}, {"required": ["value"]}]}}
    union = {
        "anyOf": [{"$ref": "#/components/schemas/Text"}, {"$ref": "#/components/schemas/Number"}],
        "title": "Item",
    }
    assert schema == {
        "allOf": [{"anyOf": [absent, union]}],
        "type": "object",
        "title": "Body_submit__post",
    }


def test_form_fields_of_dependencies_that_share_a_name_are_each_documented() -> None:

    def first(token: Annotated[str, Form()]) -> None: ...

    def second(token: Annotated[int, Form()]) -> None: ...

    app = TrioAPI()

    @app.post("/")
    def submit(
        profile: Annotated[FormProfile, Form()],
        a: Annotated[None, Depends(first)],
        b: Annotated[None, Depends(second)],
    ) -> None: ...

    _, schema = _form_body(app, "/")
    assert schema == {
        "allOf": [
            {"$ref": "#/components/schemas/FormProfile"},
            {"properties": {"token": {"type": "integer", "title": "Token"}}},
        ],
        "properties": {"token": {"type": "string", "title": "Token"}},
        "type": "object",
        "required": ["token"],
        "title": "Body_submit__post",
    }


def test_the_default_of_a_lone_optional_form_model_is_documented() -> None:
    class Settings(BaseModel):
        theme: str = "light"
        tags: list[str] = Field(default_factory=list)

    app = TrioAPI()
    dark = Settings(theme="dark")

    @app.post("/")
    def submit(settings: Annotated[Settings | None, Form()] = dark) -> None: ...

    body, _ = _form_body(app, "/")
    assert body == {
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "$ref": "#/components/schemas/Body_submit__post",
                    "default": {"theme": "dark", "tags": []},
                }
            }
        }
    }


class StreamedItem(BaseModel):
    name: str


_EVENT_FIELDS = {
    "event": {"type": "string"},
    "id": {"type": "string"},
    "retry": {"type": "integer", "minimum": 0},
}


def test_generator_routes_document_each_item_of_their_stream() -> None:
    # What FastAPI 0.165.0 writes for the same routes: JSON lines and events
    # get an itemSchema (the declared item type's, when there is one).
    from collections.abc import AsyncIterable, Iterable

    from trioapi.sse import EventSourceResponse

    app = TrioAPI()

    @app.get("/lines")
    async def lines() -> AsyncIterable[StreamedItem]:
        yield StreamedItem(name="a")

    @app.get("/lines-untyped")
    def lines_untyped():  # type: ignore[no-untyped-def]
        yield {"name": "a"}

    @app.get("/events", response_class=EventSourceResponse)
    def events() -> Iterable[StreamedItem]:
        yield StreamedItem(name="a")

    @app.get("/events-untyped", response_class=EventSourceResponse)
    async def events_untyped():  # type: ignore[no-untyped-def]
        yield {"name": "a"}

    paths = app.openapi()["paths"]

    def content(path: str) -> Any:
        return paths[path]["get"]["responses"]["200"]["content"]

    assert content("/lines") == {
        "application/jsonl": {"itemSchema": {"$ref": "#/components/schemas/StreamedItem"}}
    }
    assert content("/lines-untyped") == {"application/jsonl": {"itemSchema": {}}}
    assert content("/events") == {
        "text/event-stream": {
            "itemSchema": {
                "type": "object",
                "properties": {
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": "#/components/schemas/StreamedItem"},
                    },
                    **_EVENT_FIELDS,
                },
                "required": ["data"],
            }
        }
    }
    assert content("/events-untyped") == {
        "text/event-stream": {
            "itemSchema": {
                "type": "object",
                "properties": {"data": {"type": "string"}, **_EVENT_FIELDS},
            }
        }
    }
    assert "StreamedItem" in app.openapi()["components"]["schemas"]


_Count = Annotated[
    int,
    Field(
        alias="original",
        title="Original",
        description="From Field",
        deprecated=True,
        json_schema_extra={"x-source": "field", "x-kept": True},
    ),
]


def test_a_markers_own_settings_override_a_pydantic_field_beside_it() -> None:
    # FastAPI 0.165.0's rules: the Field's alias and documentation apply
    # unless the marker sets them; a marker's explicit None clears them; the
    # json_schema_extra dicts merge.
    app = TrioAPI()

    @app.get("/q")
    def read(
        kept: Annotated[_Count, Query()],
        replaced: Annotated[
            _Count,
            Query(
                alias="new",
                description="From Query",
                deprecated=False,
                json_schema_extra={"x-source": "query"},
            ),
        ],
        cleared: Annotated[
            _Count,
            Query(
                alias=None, title=None, description=None, deprecated=None, json_schema_extra=None
            ),
        ],
        inferred: Annotated[int, Field(title="Inferred ID", description="No marker")] = 1,
    ) -> dict[str, int]:
        return {"kept": kept, "replaced": replaced, "cleared": cleared, "inferred": inferred}

    response = TestClient(app).get("/q", params={"original": "1", "new": "2", "cleared": "3"})
    assert response.json() == {"kept": 1, "replaced": 2, "cleared": 3, "inferred": 1}
    parameters = app.openapi()["paths"]["/q"]["get"]["parameters"]
    assert parameters == [
        {
            "name": "original",
            "in": "query",
            "required": True,
            "schema": {
                "type": "integer",
                "title": "Original",
                "description": "From Field",
                "deprecated": True,
                "x-source": "field",
                "x-kept": True,
            },
            "description": "From Field",
            "deprecated": True,
        },
        {
            "name": "new",
            "in": "query",
            "required": True,
            "schema": {
                "type": "integer",
                "title": "Original",
                "description": "From Query",
                "x-source": "query",
                "x-kept": True,
            },
            "description": "From Query",
        },
        {
            "name": "cleared",
            "in": "query",
            "required": True,
            "schema": {"type": "integer", "title": "Cleared"},
        },
        {
            "name": "inferred",
            "in": "query",
            "required": False,
            "schema": {
                "type": "integer",
                "default": 1,
                "title": "Inferred ID",
                "description": "No marker",
            },
            "description": "No marker",
        },
    ]
