"""The route table and routers, tested without I/O: templates in, matches out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trioapi import APIRoute, APIRouter, Depends, RouteDefinitionError, TrioAPI, WebSocket
from trioapi._http.routing import (
    Found,
    MethodNotAllowed,
    NotFound,
    PathTemplate,
    RouteTable,
    parse_template,
)


def endpoint() -> None:
    """A stand-in endpoint; routing never calls it."""


def make_route(path: str, *methods: str, fn: Callable[..., Any] = endpoint) -> APIRoute:
    return APIRoute(path=path, endpoint=fn, methods=frozenset(methods or ("GET",)))


def table_of(*routes: APIRoute) -> RouteTable:
    table = RouteTable()
    for route in routes:
        table.add(route)
    return table


def found(result: Found | MethodNotAllowed | NotFound) -> Found:
    assert isinstance(result, Found), f"expected a match, got {result!r}"
    return result


# --- parse_template -------------------------------------------------------------


def test_template_without_parameters_is_static() -> None:
    template = parse_template("/users/me")
    assert template == PathTemplate("/users/me", (("users", None), ("me", None)), None)
    assert template.is_static
    assert template.param_names == ()


def test_root_template_is_one_empty_literal_segment() -> None:
    template = parse_template("/")
    assert template.segments == (("", None),)
    assert template.is_static


def test_template_parameters_are_named_in_order() -> None:
    template = parse_template("/orgs/{org}/repos/{repo}")
    assert template.segments == (("orgs", None), (None, "org"), ("repos", None), (None, "repo"))
    assert template.param_names == ("org", "repo")
    assert not template.is_static


def test_path_converter_makes_a_catch_all_after_the_other_parameters() -> None:
    template = parse_template("/files/{owner}/{rest:path}")
    assert template.segments == (("files", None), (None, "owner"))
    assert template.catch_all == "rest"
    assert template.param_names == ("owner", "rest")
    assert not template.is_static


def test_trailing_slash_is_an_empty_literal_segment() -> None:
    assert parse_template("/items/").segments == (("items", None), ("", None))


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("items", "must start with '/'"),
        ("/items/{id", "must be a literal or a whole"),
        ("/items/id}", "must be a literal or a whole"),
        ("/items/x{id}", "must be a literal or a whole"),
        ("/items/{id}.json", "must be a literal or a whole"),
        ("/items/{1id}", "must be a literal or a whole"),
        ("/items/{}", "must be a literal or a whole"),
        ("/a/{id}/b/{id}", "uses the parameter 'id' twice"),
        ("/a/{id}/{id:path}", "uses the parameter 'id' twice"),
        ("/files/{rest:path}/meta", "must be the last segment"),
        ("/items/{id:regex}", "unknown converter 'regex'"),
    ],
)
def test_malformed_template_raises_route_definition_error(path: str, fragment: str) -> None:
    with pytest.raises(RouteDefinitionError, match="route path") as caught:
        parse_template(path)
    assert fragment in str(caught.value)


def test_route_definition_error_is_also_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_template("no-slash")


def test_api_route_parses_its_template_at_construction() -> None:
    with pytest.raises(RouteDefinitionError):
        make_route("/items/{id")


def test_api_route_is_named_after_its_endpoint_by_default() -> None:
    assert make_route("/x").name == "endpoint"
    named = APIRoute(path="/x", endpoint=endpoint, methods=frozenset({"GET"}), name="listing")
    assert named.name == "listing"


# --- RouteTable.match: static and parameters ----------------------------------------


def test_static_path_is_found_with_no_parameters() -> None:
    route = make_route("/health")
    assert table_of(make_route("/other"), route).match("GET", "/health") == Found(route, {})


def test_root_path_matches_only_the_root_route() -> None:
    root = make_route("/")
    table = table_of(root, make_route("/x"))
    assert found(table.match("GET", "/")).route is root
    assert isinstance(table.match("GET", "/y"), NotFound)


def test_unknown_path_is_not_found() -> None:
    table = table_of(make_route("/items"), make_route("/items/{id}"))
    assert isinstance(table.match("GET", "/nothing"), NotFound)
    assert isinstance(table.match("GET", "/items/1/extra"), NotFound)


def test_parameter_captures_one_raw_segment() -> None:
    route = make_route("/orgs/{org}/repos/{repo}")
    result = found(table_of(route).match("GET", "/orgs/trio/repos/h11"))
    assert result.route is route
    assert result.params == {"org": "trio", "repo": "h11"}


def test_parameter_does_not_match_an_empty_segment() -> None:
    table = table_of(make_route("/items/{id}"))
    assert isinstance(table.match("GET", "/items/"), NotFound)
    assert isinstance(table.match("GET", "/items//x"), NotFound)


def test_parameter_does_not_span_a_slash() -> None:
    table = table_of(make_route("/items/{id}"))
    assert isinstance(table.match("GET", "/items/a/b"), NotFound)


def test_catch_all_takes_the_rest_of_the_path_slashes_included() -> None:
    route = make_route("/files/{owner}/{rest:path}")
    result = found(table_of(route).match("GET", "/files/ann/docs/2024/report.txt"))
    assert result.params == {"owner": "ann", "rest": "docs/2024/report.txt"}


def test_catch_all_needs_at_least_one_character() -> None:
    table = table_of(make_route("/files/{rest:path}"))
    assert isinstance(table.match("GET", "/files"), NotFound)
    assert isinstance(table.match("GET", "/files/"), NotFound)
    assert found(table.match("GET", "/files/a")).params == {"rest": "a"}


def test_catch_all_keeps_a_trailing_slash() -> None:
    table = table_of(make_route("/files/{rest:path}"))
    assert found(table.match("GET", "/files/dir/")).params == {"rest": "dir/"}


def test_single_segment_parameter_beats_catch_all_at_the_same_level() -> None:
    one = make_route("/files/{name}")
    rest = make_route("/files/{rest:path}")
    table = table_of(rest, one)
    assert found(table.match("GET", "/files/a")).route is one
    assert found(table.match("GET", "/files/a/b")).route is rest


@pytest.mark.parametrize("literal_first", [True, False])
def test_literal_segment_beats_parameter_whatever_the_order(literal_first: bool) -> None:
    me = make_route("/users/me")
    by_id = make_route("/users/{user_id}")
    table = table_of(me, by_id) if literal_first else table_of(by_id, me)
    assert found(table.match("GET", "/users/me")).route is me
    assert found(table.match("GET", "/users/42")) == Found(by_id, {"user_id": "42"})


@pytest.mark.parametrize("literal_first", [True, False])
def test_literal_beats_parameter_in_dynamic_templates_too(literal_first: bool) -> None:
    literal = make_route("/users/me/posts/{post}")
    param = make_route("/users/{user}/posts/{post}")
    table = table_of(literal, param) if literal_first else table_of(param, literal)
    assert found(table.match("GET", "/users/me/posts/1")) == Found(literal, {"post": "1"})
    assert found(table.match("GET", "/users/ann/posts/1")) == Found(
        param, {"user": "ann", "post": "1"}
    )


def test_lookup_backtracks_from_a_literal_branch_that_dead_ends() -> None:
    literal = make_route("/a/b/d")
    param = make_route("/a/{x}/c")
    table = table_of(literal, param)
    assert found(table.match("GET", "/a/b/c")) == Found(param, {"x": "b"})
    assert found(table.match("GET", "/a/b/d")).route is literal


def test_identical_templates_first_registration_wins() -> None:
    def first() -> None: ...

    def second() -> None: ...

    table = table_of(make_route("/x/{a}", fn=first), make_route("/x/{a}", fn=second))
    assert found(table.match("GET", "/x/1")).route.endpoint is first
    table = table_of(make_route("/y", fn=first), make_route("/y", fn=second))
    assert found(table.match("GET", "/y")).route.endpoint is first


def test_same_path_different_methods_pick_their_own_route() -> None:
    get = make_route("/items/{id}", "GET")
    put = make_route("/items/{id}", "PUT")
    table = table_of(get, put)
    assert found(table.match("GET", "/items/1")).route is get
    assert found(table.match("PUT", "/items/1")).route is put


def test_explicit_segments_let_an_encoded_slash_stay_inside_a_parameter() -> None:
    route = make_route("/files/{name}")
    result = table_of(route).match("GET", "/files/a/b", ["files", "a/b"])
    assert result == Found(route, {"name": "a/b"})


def test_explicit_segments_still_find_static_routes() -> None:
    route = make_route("/static/page")
    result = table_of(route).match("GET", "/static/page", ["static", "page"])
    assert found(result).route is route


# --- methods: 405 and HEAD -------------------------------------------------------------


def test_wrong_method_on_static_path_lists_allowed_methods_with_head() -> None:
    table = table_of(make_route("/items", "GET"), make_route("/items", "POST"))
    assert table.match("DELETE", "/items") == MethodNotAllowed(("GET", "HEAD", "POST"))


def test_wrong_method_on_parameter_path_lists_allowed_methods() -> None:
    table = table_of(make_route("/items/{id}", "PUT", "PATCH"))
    assert table.match("GET", "/items/1") == MethodNotAllowed(("PATCH", "PUT"))


def test_allowed_methods_gather_every_template_that_matches_the_path() -> None:
    table = table_of(make_route("/items/new", "POST"), make_route("/items/{id}", "DELETE"))
    assert table.match("GET", "/items/new") == MethodNotAllowed(("DELETE", "POST"))


def test_method_mismatch_on_literal_falls_through_to_parameter_route() -> None:
    literal = make_route("/items/new", "POST")
    param = make_route("/items/{id}", "GET")
    assert found(table_of(literal, param).match("GET", "/items/new")) == Found(param, {"id": "new"})


def test_head_is_answered_by_the_get_route() -> None:
    get = make_route("/items", "GET")
    dynamic = make_route("/items/{id}", "GET")
    table = table_of(get, dynamic)
    assert found(table.match("HEAD", "/items")).route is get
    assert found(table.match("HEAD", "/items/3")) == Found(dynamic, {"id": "3"})


def test_declared_head_route_wins_over_get() -> None:
    get = make_route("/items", "GET")
    head = make_route("/items", "HEAD")
    assert found(table_of(get, head).match("HEAD", "/items")).route is head


def test_head_is_not_allowed_without_a_get_route() -> None:
    table = table_of(make_route("/items", "POST"))
    assert table.match("HEAD", "/items") == MethodNotAllowed(("POST",))


# --- trailing slashes ------------------------------------------------------------------


def test_trailing_slash_is_a_different_path() -> None:
    bare = make_route("/items")
    table = table_of(bare)
    assert isinstance(table.match("GET", "/items/"), NotFound)
    slashed = make_route("/things/")
    table = table_of(slashed)
    assert found(table.match("GET", "/things/")).route is slashed
    assert isinstance(table.match("GET", "/things"), NotFound)


def test_both_slash_variants_can_coexist() -> None:
    bare = make_route("/items/{id}")
    slashed = make_route("/items/{id}/")
    table = table_of(bare, slashed)
    assert found(table.match("GET", "/items/1")).route is bare
    assert found(table.match("GET", "/items/1/")).route is slashed


def test_has_path_ignores_the_method() -> None:
    table = table_of(make_route("/items", "POST"))
    assert table.has_path("/items")
    assert not table.has_path("/items/")


# --- APIRouter -------------------------------------------------------------------------


def dep_a() -> None: ...


def dep_b() -> None: ...


def dep_c() -> None: ...


def dep_d() -> None: ...


def test_router_prefix_is_prepended_to_every_route() -> None:
    router = APIRouter(prefix="/users")
    router.get("/{user_id}")(endpoint)
    router.post("")(endpoint)
    assert [(r.path, r.methods) for r in router.routes] == [
        ("/users/{user_id}", frozenset({"GET"})),
        ("/users", frozenset({"POST"})),
    ]
    assert router.routes[0].template.param_names == ("user_id",)


def test_router_decorators_register_their_methods_and_return_the_endpoint() -> None:
    router = APIRouter()
    for register, method in [
        (router.get, "GET"),
        (router.post, "POST"),
        (router.put, "PUT"),
        (router.patch, "PATCH"),
        (router.delete, "DELETE"),
        (router.head, "HEAD"),
        (router.options, "OPTIONS"),
    ]:
        assert register("/r")(endpoint) is endpoint
        assert router.routes[-1].methods == frozenset({method})


def test_api_route_upper_cases_methods_and_needs_at_least_one() -> None:
    router = APIRouter()
    router.api_route("/r", methods=["get", "post"])(endpoint)
    assert router.routes[0].methods == frozenset({"GET", "POST"})
    with pytest.raises(RouteDefinitionError, match="at least one method"):
        router.add_api_route("/r", endpoint, methods=[])


def test_router_options_are_kept_on_the_route() -> None:
    router = APIRouter()
    route = router.add_api_route(
        "/r", endpoint, status_code=201, name="made", summary="s", max_body_size=10
    )
    assert (route.status_code, route.name, route.summary, route.max_body_size) == (
        201,
        "made",
        "s",
        10,
    )


def test_router_tags_and_dependencies_come_before_the_routes_own() -> None:
    router = APIRouter(tags=["users"], dependencies=[Depends(dep_a)])
    router.get("/x", tags=["read"], dependencies=[Depends(dep_b)])(endpoint)
    route = router.routes[0]
    assert route.tags == ("users", "read")
    assert [d.dependency for d in route.dependencies] == [dep_a, dep_b]


@pytest.mark.parametrize("prefix", ["users", "/users/", "/"])
def test_bad_router_prefix_raises(prefix: str) -> None:
    with pytest.raises(RouteDefinitionError, match="must start with '/' and not end with '/'"):
        APIRouter(prefix=prefix)


@pytest.mark.parametrize("prefix", ["v1", "/v1/"])
def test_bad_include_router_prefix_raises(prefix: str) -> None:
    with pytest.raises(RouteDefinitionError, match="include_router prefix"):
        APIRouter().include_router(APIRouter(), prefix=prefix)


def test_malformed_route_path_raises_at_registration() -> None:
    router = APIRouter(prefix="/api")
    with pytest.raises(RouteDefinitionError, match=r"'/api/\{x'"):
        router.get("/{x")(endpoint)


def test_include_router_copies_routes_under_the_prefix() -> None:
    child = APIRouter(prefix="/users")
    child.get("/{user_id}")(endpoint)
    parent = APIRouter()
    parent.include_router(child, prefix="/v1")
    assert [r.path for r in parent.routes] == ["/v1/users/{user_id}"]
    # The child's own route is untouched.
    assert child.routes[0].path == "/users/{user_id}"


def test_nested_routers_stack_prefixes_tags_and_dependencies_outermost_first() -> None:
    inner = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(dep_d)])
    inner.get("/{item_id}", tags=["read"])(endpoint)
    middle = APIRouter(prefix="/shop", tags=["shop"], dependencies=[Depends(dep_b)])
    middle.include_router(inner, tags=["included"], dependencies=[Depends(dep_c)])
    outer = APIRouter(prefix="/api", dependencies=[Depends(dep_a)])
    outer.include_router(middle, prefix="/v2")

    [route] = outer.routes
    assert route.path == "/api/v2/shop/items/{item_id}"
    assert route.tags == ("shop", "included", "items", "read")
    assert [d.dependency for d in route.dependencies] == [dep_a, dep_b, dep_c, dep_d]
    assert route.endpoint is endpoint


def test_include_router_takes_routes_as_they_are_when_included() -> None:
    child = APIRouter()
    child.get("/early")(endpoint)
    parent = APIRouter()
    parent.include_router(child)
    child.get("/late")(endpoint)
    assert [r.path for r in parent.routes] == ["/early"]


def test_a_route_made_on_its_own_answers_get_unless_told() -> None:
    assert APIRoute("/", endpoint).methods == frozenset({"GET"})
    assert APIRoute("/", endpoint, methods=["post", "Put"]).methods == {"POST", "PUT"}
    with pytest.raises(ValueError, match="max_fields"):
        APIRoute("/", endpoint, form_limits={"max_fields": -1})


def items() -> list[str]:
    return ["a"]


def test_routes_given_to_the_app_are_served_with_the_apps_defaults() -> None:
    from trioapi.routing import APIWebSocketRoute, Mount
    from trioapi.testclient import TestClient

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    mounted = TrioAPI()
    mounted.get("/inner")(items)
    app = TrioAPI(
        routes=[
            APIRoute("/items", items, status_code=201),
            APIWebSocketRoute("/ws", echo),
            Mount("/sub", mounted),
        ],
        max_body_size=10,
    )
    with TestClient(app) as client:
        answer = client.get("/items")
        assert (answer.status_code, answer.json()) == (201, ["a"])
        assert client.get("/sub/inner").json() == ["a"]
        with client.websocket_connect("/ws") as websocket:
            assert websocket.receive_text() == "hi"
    served = next(route for route in app.routes if getattr(route, "path", "") == "/items")
    assert served.max_body_size == 10  # the app's default, under the route's own options
    assert "/items" in app.openapi()["paths"]


def test_routes_given_to_a_router_are_included_with_it() -> None:
    router = APIRouter(prefix="/v1", routes=[APIRoute("/items", items)], tags=["v1"])
    app = TrioAPI()
    app.include_router(router)
    route = next(route for route in app.routes if getattr(route, "path", "") == "/v1/items")
    assert route.tags == ("v1",)


def test_routes_takes_route_objects_only() -> None:
    with pytest.raises(TypeError, match="routes= takes APIRoute"):
        TrioAPI(routes=[items])


def test_router_routes_fill_a_table_that_matches_them() -> None:
    child = APIRouter(prefix="/users")
    child.get("/me")(endpoint)
    child.get("/{user_id}")(endpoint)
    parent = APIRouter(prefix="/api")
    parent.include_router(child)
    table = table_of(*reversed(parent.routes))
    assert found(table.match("GET", "/api/users/me")).route.path == "/api/users/me"
    assert found(table.match("GET", "/api/users/7")).params == {"user_id": "7"}


# --- awkward segment text ----------------------------------------------------------------


@pytest.mark.parametrize(
    "first", ["me", "ME", "m", "mee", "Jörg", "a b", "%41", "{user}", "..", ".", "\x00", "🙂"]
)
@pytest.mark.parametrize("second", ["x", "me", "{tab}", "%", "\u200b"])
def test_parameters_capture_any_segment_text_and_literals_still_win(
    first: str, second: str
) -> None:
    me = make_route("/users/me/{tab}")
    param = make_route("/users/{user}/{tab}")
    rest = make_route("/files/{path:path}")
    table = table_of(param, me, rest)
    result = found(table.match("GET", f"/users/{first}/{second}"))
    if first == "me":
        assert result == Found(me, {"tab": second})
    else:
        assert result == Found(param, {"user": first, "tab": second})
    assert found(table.match("GET", f"/files/{first}/{second}")).params == {
        "path": f"{first}/{second}"
    }


def test_an_empty_path_waits_for_a_prefix_and_alone_is_refused() -> None:
    router = APIRouter()

    @router.get("")
    def items() -> list[str]:
        return ["ok"]

    app = TrioAPI()
    app.include_router(router, prefix="/items")
    assert [route.path for route in app.routes if route.endpoint is items] == ["/items"]
    with pytest.raises(RouteDefinitionError, match="Prefix and path cannot be both empty"):
        app.include_router(router)


def test_a_router_including_itself_is_refused_in_fastapi_s_words() -> None:
    router = APIRouter()
    with pytest.raises(AssertionError, match="Cannot include the same APIRouter instance into"):
        router.include_router(router)
