"""Security utilities (FastAPI's ``fastapi.security``).

For now the ``SecurityScopes`` a ``Security()`` dependency receives; the
schemes (OAuth2, HTTP Basic/Bearer, API keys, OpenID Connect) come next.
"""

from .._http.markers import SecurityScopes as SecurityScopes

__all__ = ["SecurityScopes"]
