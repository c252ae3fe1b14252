"""FastAPI 0.165's ``fastapi.telemetry`` at trioapi's path: ``TrioAPI(telemetry={...})``.

Importing it imports nothing of OpenTelemetry. See ``docs/observability.md``.
"""

from ._api import TelemetryConfig as TelemetryConfig
from ._api import TelemetryData as TelemetryData
from ._api import get_telemetry_data as get_telemetry_data
