"""The HTTP API: `create_app(store_path, settings)` (FastAPI), `serve(...)` (uvicorn), `Settings`."""

from visionloop.serve.app import create_app, serve
from visionloop.serve.settings import Settings

__all__ = ["Settings", "create_app", "serve"]
