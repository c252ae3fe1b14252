"""The type of a ``form_limits`` setting, at the path FastAPI keeps it.

FastAPI code annotates its limits as ``fastapi._form_limits._FormLimits``;
after the import swap that is this module. New code can use
:class:`trioapi._http.forms.FormLimits`, the same TypedDict.
"""

from __future__ import annotations

from ._http.forms import FormLimits as _FormLimits

__all__ = ["_FormLimits"]
