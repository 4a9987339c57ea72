"""The HTTP front: our versioned REST API and the reference's wire protocol over the Ray hosts."""

from trainbox_server.service.app import create_app
from trainbox_server.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]
