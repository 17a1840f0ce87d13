"""ASGI entry point: ``uvicorn chronotick_gateway.main:app``."""

from chronotick_gateway.app import create_app

app = create_app()
