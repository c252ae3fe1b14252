"""Jinja2 templates (FastAPI's ``fastapi.templating``); needs ``pip install jinja2``.

::

    templates = Jinja2Templates(directory="templates")

    @app.get("/items/{id}", response_class=HTMLResponse)
    async def read_item(request: Request, id: str):
        return templates.TemplateResponse(request=request, name="item.html", context={"id": id})

Templates get ``request`` and ``url_for(name, **path_params)``, which is
``request.url_for``: absolute URLs of routes and mounts (``url_for("static",
path="/styles.css")``), under the app's ``root_path``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

try:
    import jinja2  # type: ignore[import-not-found, unused-ignore]
except ImportError as error:  # pragma: no cover - exercised only without jinja2
    msg = "trioapi.templating needs jinja2: pip install jinja2"
    raise ImportError(msg) from error

from ._http.requests import Receive, Request, Send
from ._http.responses import HTMLResponse

__all__ = ["Jinja2Templates"]


class _TemplateResponse(HTMLResponse):
    """A rendered template; a test client that asks for it gets the template and context."""

    def __init__(
        self,
        template: Any,
        context: dict[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> None:
        self.template = template
        self.context = context
        self.background = background
        super().__init__(template.render(context), status_code, headers, media_type)

    async def send_to(
        self,
        send: Send,
        *,
        head: bool = False,
        shield: bool = False,
        receive: Receive | None = None,
        whole_body_sends: bool = False,
    ) -> None:
        """Sends the page, after the template and context for a client that asks for them."""
        request = self.context.get("request")
        extensions = getattr(request, "scope", {}).get("extensions") or {}
        if "http.response.debug" in extensions:
            info = {"template": self.template, "context": self.context}
            await send({"type": "http.response.debug", "info": info})
        await super().send_to(
            send, head=head, shield=shield, receive=receive, whole_body_sends=whole_body_sends
        )


class Jinja2Templates:
    """Renders Jinja2 templates into HTML responses.

    Args:
        directory: Where the templates are (one directory or several).
        context_processors: ``processor(request) -> dict`` functions whose
            results are added to every template's context.
        env: A Jinja2 ``Environment`` of your own, instead of ``directory``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        context_processors: list[Callable[[Request], dict[str, Any]]] | None = None,
        env: jinja2.Environment | None = None,
    ) -> None:
        if bool(directory) == bool(env):
            msg = "pass either 'directory' or 'env' to Jinja2Templates"
            raise AssertionError(msg)
        self.context_processors = context_processors or []
        if env is None:
            assert directory is not None  # one of the two, checked above
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(directory),
                autoescape=jinja2.select_autoescape(),
            )
        self.env = env

        def url_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> Any:
            request: Request = context["request"]
            return request.url_for(name, **path_params)

        # Jinja passes the template's context first (for its "request").
        env.globals.setdefault("url_for", jinja2.pass_context(url_for))

    def get_template(self, name: str) -> jinja2.Template:
        """The template called ``name``."""
        return self.env.get_template(name)

    def TemplateResponse(
        self,
        request: Request | str,
        name: str | Mapping[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: Any = None,
    ) -> HTMLResponse:
        """Renders the template ``name`` with ``context`` (plus ``request``) into a response.

        Args:
            request: The request (templates use it for ``url_for``).
            name: The template's file name.
            context: The template's variables.
            status_code: The response's status code.
            headers: Extra headers.
            media_type: The ``Content-Type`` (``text/html``).
            background: Accepted for FastAPI's signature.

        Also takes Starlette's older order, ``TemplateResponse(name, {"request": request, ...})``.
        """
        if isinstance(request, str):
            template_name = request
            context = dict(name or {}) if isinstance(name, Mapping) else dict(context or {})
            found = context.get("request")
            if not isinstance(found, Request):
                msg = 'TemplateResponse(name, context) needs context["request"]'
                raise TypeError(msg)
            request = found
        else:
            if not isinstance(name, str):
                msg = "TemplateResponse needs the template's name"
                raise TypeError(msg)
            template_name = name
            context = context if context is not None else {}
        context.setdefault("request", request)
        for processor in self.context_processors:
            context.update(processor(request))
        return _TemplateResponse(
            self.get_template(template_name),
            context,
            status_code=status_code,
            headers=headers,
            media_type=media_type,
            background=background,
        )
