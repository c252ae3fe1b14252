"""How long ``app.openapi()`` takes to build the document of a 200-route app, next to FastAPI.

    python bench/openapi_build.py [--routes 200] [--rounds 7]

Both frameworks get the same app, written once against FastAPI's API and
built with either package (``build_app``): every route has a path parameter,
and in turn query parameters with constraints, a header, a pydantic body, a
``response_model``, tags, a summary, ``responses=`` and a dependency, spread
over routers included with prefixes. Each measurement builds a fresh app
(the document is cached on the app after its first build), then times the
first ``app.openapi()`` call alone. Rounds interleave the frameworks; the
table gives the median and range per framework and the ratio of medians.

It also checks that the two documents are equal after a JSON round trip
(``--no-compare`` skips that), so that the timing compares the same work.

The build is not on the request path: a server builds the document on the
first request to ``/openapi.json`` (or ``/docs``), once.
"""

import argparse
import gc
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Address(BaseModel):
    street: str
    city: str = Field(min_length=1, max_length=80)
    postcode: str | None = None


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    price: float = Field(gt=0)
    tags: list[str] = []
    ship_to: Address | None = None


class ItemOut(BaseModel):
    id: int
    name: str
    price: float


class Problem(BaseModel):
    message: str


def build_app(package: str, routes: int) -> Any:
    """The same app, made with ``fastapi`` or ``trioapi``: ``routes`` path operations."""
    fw: ModuleType = importlib.import_module(package)
    params: Any = fw  # Query, Header, Body and Depends are top-level names in both
    app_class = fw.FastAPI if package == "fastapi" else fw.TrioAPI
    app = app_class(title="Shop", version="1.0.0", description="Two hundred routes.")

    def paging(
        offset: Annotated[int, params.Query(ge=0)] = 0,
        limit: Annotated[int, params.Query(ge=1, le=100)] = 20,
    ) -> dict[str, int]:
        return {"offset": offset, "limit": limit}

    per_router = 20
    for first in range(0, routes, per_router):
        router = fw.APIRouter(prefix=f"/area{first // per_router}", tags=[f"area{first}"])
        for n in range(first, min(first + per_router, routes)):
            kind = n % 4
            if kind == 0:

                def read(
                    item_id: int, q: Annotated[str | None, params.Query(max_length=50)] = None
                ):
                    return {"id": item_id}

                router.add_api_route(
                    f"/items{n}/{{item_id}}",
                    read,
                    methods=["GET"],
                    response_model=ItemOut,
                    summary=f"Read item {n}",
                    responses={404: {"model": Problem, "description": "No such item"}},
                    name=f"read_{n}",
                )
            elif kind == 1:

                def create(item_id: int, item: ItemIn, x_token: Annotated[str, params.Header()]):
                    return {"id": item_id, **item.model_dump()}

                router.add_api_route(
                    f"/items{n}/{{item_id}}",
                    create,
                    methods=["POST"],
                    response_model=ItemOut,
                    status_code=201,
                    name=f"create_{n}",
                )
            elif kind == 2:

                def listing(
                    item_id: int, page: Annotated[dict[str, int], params.Depends(paging)]
                ) -> list[ItemOut]:
                    return []

                router.add_api_route(
                    f"/items{n}/{{item_id}}/children",
                    listing,
                    methods=["GET"],
                    name=f"list_{n}",
                    deprecated=n % 8 == 2,
                )
            else:

                def update(
                    item_id: int,
                    name: Annotated[str, params.Body(embed=True, min_length=1)],
                    price: Annotated[float, params.Body(embed=True, gt=0)],
                ) -> ItemOut:
                    return ItemOut(id=item_id, name=name, price=price)

                router.add_api_route(
                    f"/items{n}/{{item_id}}", update, methods=["PUT"], name=f"update_{n}"
                )
        app.include_router(router)
    return app


def time_build(package: str, routes: int) -> float:
    """Seconds for the first ``openapi()`` of a fresh app (its construction is not timed)."""
    app = build_app(package, routes)
    gc.collect()
    start = time.perf_counter()
    app.openapi()
    return time.perf_counter() - start


def compare(routes: int) -> str:
    trioapi_doc = json.loads(json.dumps(build_app("trioapi", routes).openapi()))
    fastapi_doc = json.loads(json.dumps(build_app("fastapi", routes).openapi()))
    if trioapi_doc == fastapi_doc:
        return "equal"
    differing = sorted(
        key
        for key in set(trioapi_doc) | set(fastapi_doc)
        if trioapi_doc.get(key) != fastapi_doc.get(key)
    )
    paths = [
        path
        for path in fastapi_doc.get("paths", {})
        if trioapi_doc.get("paths", {}).get(path) != fastapi_doc["paths"][path]
    ]
    return f"different: top-level keys {differing}, {len(paths)} paths (first: {paths[:3]})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=200, help="path operations (200)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (7)")
    parser.add_argument("--no-compare", action="store_true", help="skip the equality check")
    args = parser.parse_args(argv)
    if args.routes < 1 or args.rounds < 1:
        parser.error("--routes and --rounds must be at least 1")

    for package in ("trioapi", "fastapi"):  # warm: imports, pydantic's schema caches
        time_build(package, args.routes)
    times: dict[str, list[float]] = {"trioapi": [], "fastapi": []}
    for _ in range(args.rounds):
        for package in times:
            times[package].append(time_build(package, args.routes))

    fastapi = importlib.import_module("fastapi")
    trioapi = importlib.import_module("trioapi")
    print(
        f"`app.openapi()` for an app of {args.routes} routes, first call on a fresh app; "
        f"median (min-max) of {args.rounds} interleaved rounds; "
        f"Python {sys.version.split()[0]}, trioapi {trioapi.__version__}, "
        f"fastapi {fastapi.__version__}"
    )
    if not args.no_compare:
        print(f"documents after a JSON round trip: {compare(args.routes)}")
    print()
    print("| framework | ms | x FastAPI (time) |")
    print("|---|---:|---:|")
    medians = {package: statistics.median(runs) for package, runs in times.items()}
    for package, runs in times.items():
        name = "trioapi" if package == "trioapi" else "FastAPI"
        print(
            f"| {name} | {medians[package] * 1e3:.1f} "
            f"({min(runs) * 1e3:.1f}-{max(runs) * 1e3:.1f}) "
            f"| {medians[package] / medians['fastapi']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
