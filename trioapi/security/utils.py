"""Helpers shared by the security schemes (FastAPI's ``fastapi.security.utils``)."""

from __future__ import annotations


def get_authorization_scheme_param(authorization_header_value: str | None) -> tuple[str, str]:
    """Splits an ``Authorization`` header value into its scheme and its parameter.

    The scheme is everything before the first space; the parameter is the rest,
    without surrounding whitespace. ``"Bearer  abc "`` gives ``("Bearer", "abc")``.

    Args:
        authorization_header_value: The header's value, or None when the
            request has none.

    Returns:
        ``(scheme, param)``; both empty for a missing or empty header, and the
        parameter empty for a header with no space.
    """
    if not authorization_header_value:
        return "", ""
    scheme, _, param = authorization_header_value.partition(" ")
    return scheme, param.strip()
