"""The server adapter: aiohttp on uvloop, moving bytes between sockets and the core."""

from hubbub.server.app import HubServer, create_app
from hubbub.server.run import serve, start_server
from hubbub.settings import ServerSettings

__all__ = ["HubServer", "ServerSettings", "create_app", "serve", "start_server"]
