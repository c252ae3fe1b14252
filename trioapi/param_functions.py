"""``Query()``, ``Path()``, ``Depends()``... (FastAPI's ``fastapi.param_functions``).

In trioapi the marker classes are called directly; this module is where
FastAPI code imports them from.
"""

from ._http.markers import Body as Body
from ._http.markers import Cookie as Cookie
from ._http.markers import Depends as Depends
from ._http.markers import File as File
from ._http.markers import Form as Form
from ._http.markers import Header as Header
from ._http.markers import Path as Path
from ._http.markers import Query as Query
from ._http.markers import Security as Security

__all__ = ["Body", "Cookie", "Depends", "File", "Form", "Header", "Path", "Query", "Security"]
