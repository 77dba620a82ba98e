"""One scenario suite for both client SDKs: hubbub.client (Python) and hubbub.js
(in Chromium) do the same against a real server, as docs/protocol.md says.

Each scenario is written once over a common driver (``drivers.py``) and runs as
``[python]`` and ``[browser]``; ``network.py`` has the server, the relay that cuts
and closes connections, and the other members.
"""
