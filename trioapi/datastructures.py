"""Request data structures (FastAPI's ``fastapi.datastructures``)."""

from ._http.datastructures import URL as URL
from ._http.datastructures import Address as Address
from ._http.datastructures import Default as Default
from ._http.datastructures import DefaultPlaceholder as DefaultPlaceholder
from ._http.datastructures import Headers as Headers
from ._http.datastructures import QueryParams as QueryParams
from ._http.datastructures import State as State
from ._http.uploads import FormData as FormData
from ._http.uploads import UploadFile as UploadFile

__all__ = [
    "URL",
    "Address",
    "Default",
    "DefaultPlaceholder",
    "FormData",
    "Headers",
    "QueryParams",
    "State",
    "UploadFile",
]
