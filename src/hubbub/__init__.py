"""hubbub: a self-hosted real-time communication server."""

__version__ = "0.1.0"
