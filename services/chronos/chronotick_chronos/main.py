"""ASGI entry point: ``uvicorn chronotick_chronos.main:app``."""

from chronotick.kit import ServiceSettings, create_app
from chronotick_chronos.family import ChronosFamily
from chronotick_chronos.settings import ChronosSettings

app = create_app(ChronosFamily(ChronosSettings()), ServiceSettings())
