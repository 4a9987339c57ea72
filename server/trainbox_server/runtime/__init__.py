"""Environment runtime: worker processes per family, warm pools, and the instance table."""

from trainbox_server.runtime.pool import FamilyConfig
from trainbox_server.runtime.runtime import CreatedInstance, Runtime, RuntimeConfig

__all__ = ["CreatedInstance", "FamilyConfig", "Runtime", "RuntimeConfig"]
