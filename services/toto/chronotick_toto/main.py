"""ASGI entry point: ``uvicorn chronotick_toto.main:app``."""

from chronotick.kit import ServiceSettings, create_app
from chronotick_toto.family import TotoFamily
from chronotick_toto.settings import TotoSettings

app = create_app(TotoFamily(TotoSettings()), ServiceSettings())
