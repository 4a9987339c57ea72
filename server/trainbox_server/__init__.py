"""trainbox data plane: environment adapters, worker processes, Ray hosts and the HTTP service."""

__version__ = "0.1.0"
