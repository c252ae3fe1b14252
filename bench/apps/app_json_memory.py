"""JSON bodies of every shape, for ``bench/json_memory.py``: dicts, lists, and models."""

from typing import Annotated, Any

from pydantic import BaseModel

from trioapi import Body, TrioAPI

app = TrioAPI()


class Empty(BaseModel):
    pass


class Item(BaseModel):
    id: int
    name: str
    price: float


@app.post("/any")
async def any_json(payload: Annotated[Any, Body()]) -> dict[str, int]:
    return {"size": len(payload) if hasattr(payload, "__len__") else 1}


@app.post("/empties")
async def empties(payload: list[Empty]) -> dict[str, int]:
    return {"size": len(payload)}


@app.post("/items")
async def items(payload: list[Item]) -> dict[str, int]:
    return {"size": len(payload)}
