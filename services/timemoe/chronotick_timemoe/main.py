"""ASGI entry point: ``uvicorn chronotick_timemoe.main:app``."""

from chronotick.kit import ServiceSettings, create_app
from chronotick_timemoe.family import TimeMoeFamily
from chronotick_timemoe.settings import TimeMoeSettings

app = create_app(TimeMoeFamily(TimeMoeSettings()), ServiceSettings())
