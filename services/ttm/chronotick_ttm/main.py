"""ASGI entry point: ``uvicorn chronotick_ttm.main:app``."""

from chronotick.kit import ServiceSettings, create_app
from chronotick_ttm.family import TtmFamily
from chronotick_ttm.settings import TtmSettings

app = create_app(TtmFamily(TtmSettings()), ServiceSettings())
