"""The web UI: server-rendered pages over the project (dataset, image, health, models and their errors).

Mounted by the API's app (`visionloop serve`, `visionloop ui`) at `/`; every page has a JSON twin under
`/v1/ui/` that returns the very object the page renders (`views`).
"""

from visionloop.web.context import WebContext
from visionloop.web.routes import mount

__all__ = ["WebContext", "mount"]
