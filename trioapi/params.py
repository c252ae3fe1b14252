"""The parameter marker classes (FastAPI's ``fastapi.params``).

``trioapi.param_functions`` (and ``trioapi`` itself) export the same
classes: calling one builds the marker, as FastAPI's functions do.
"""

from ._http.markers import Body as Body
from ._http.markers import Cookie as Cookie
from ._http.markers import Depends as Depends
from ._http.markers import File as File
from ._http.markers import Form as Form
from ._http.markers import Header as Header
from ._http.markers import Param as Param
from ._http.markers import ParamTypes as ParamTypes
from ._http.markers import Path as Path
from ._http.markers import Query as Query
from ._http.markers import Security as Security

__all__ = [
    "Body",
    "Cookie",
    "Depends",
    "File",
    "Form",
    "Header",
    "Param",
    "ParamTypes",
    "Path",
    "Query",
    "Security",
]
