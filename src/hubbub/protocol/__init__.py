"""hubbub's wire protocol: messages, their encoding, and the codes for refusals.

Sans-I/O: nothing here touches a socket or an event loop.
"""

from hubbub.protocol.codec import decode, encode
from hubbub.protocol.errors import CloseCode, ErrorCode, ProtocolError

__all__ = ["CloseCode", "ErrorCode", "ProtocolError", "decode", "encode"]
