"""Shared-key authentication for the v1 handshake (sans-I/O: no sockets here).

Both sides prove that they hold the key without sending it, as Python's
``multiprocessing.connection`` does: each sends a fresh random nonce, and each answers
with an HMAC-SHA256, under the key, of both nonces, both ids and the protocol version,
with a label that differs by direction (a server's proof is never a valid client proof).
Since the server's nonce is fresh, a recorded client proof is worth nothing on a later
connection; since the client's is, a recorded server proof is worth nothing either.
``docs/protocol.md`` draws the frames.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Literal

from .exceptions import InvalidArgumentError
from .wire import PROTOCOL_VERSION

__all__ = [
    "AUTH_FAILED",
    "MAC_SIZE",
    "NONCE_SIZE",
    "AuthKey",
    "check_key",
    "key_lookup",
    "new_nonce",
    "proof",
    "proofs_match",
]

AuthKey = bytes | Mapping[str, bytes] | Callable[[str], bytes | None]
"""What a server takes as ``authkey``: one key for every interface, a mapping from an
interface's id to its key, or a callable that returns the key for an id (None refuses it)."""

NONCE_SIZE = 32
"""Bytes of each side's nonce (256 bits: never repeats)."""

MAC_SIZE = hashlib.sha256().digest_size
"""Bytes of a proof (HMAC-SHA256)."""

AUTH_FAILED = "authentication failed"
"""The only reason a refused peer is given, whatever failed (key, id or proof)."""

_LABELS = {
    "client": b"pymasep-comm v1 client proof\0",
    "server": b"pymasep-comm v1 server proof\0",
}


def new_nonce() -> bytes:
    """A fresh nonce from the operating system's CSPRNG."""
    return secrets.token_bytes(NONCE_SIZE)


def _field(value: bytes) -> bytes:
    # Length-prefixed, so that no two different (id, id) pairs hash the same bytes.
    return len(value).to_bytes(4, "big") + value


def proof(
    key: bytes,
    role: Literal["client", "server"],
    client_nonce: bytes,
    server_nonce: bytes,
    client_id: str,
    server_id: str,
) -> bytes:
    """The proof that ``role`` holds ``key``, for one handshake.

    Args:
        key: The shared key.
        role: Which side proves.
        client_nonce: The client's nonce.
        server_nonce: The server's nonce.
        client_id: The client's id.
        server_id: The server's id.
    """
    transcript = b"".join(
        (
            _LABELS[role],
            bytes([PROTOCOL_VERSION]),
            _field(client_nonce),
            _field(server_nonce),
            _field(client_id.encode("utf-8")),
            _field(server_id.encode("utf-8")),
        )
    )
    return hmac.new(key, transcript, hashlib.sha256).digest()


def proofs_match(expected: bytes, received: bytes) -> bool:
    """Compare two proofs in constant time."""
    return hmac.compare_digest(expected, received)


def check_key(key: object) -> bytes:
    """Return ``key`` as bytes.

    Raises:
        InvalidArgumentError: It is not non-empty bytes.
    """
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise InvalidArgumentError("an authentication key must be non-empty bytes")
    return bytes(key)


def key_lookup(authkey: AuthKey) -> Callable[[str], bytes | None]:
    """Turn a server's ``authkey`` into a function from a client's id to its key.

    Raises:
        InvalidArgumentError: ``authkey`` is none of bytes, a mapping or a callable.
    """
    if isinstance(authkey, (bytes, bytearray)):
        key = check_key(authkey)
        return lambda ident: key
    if isinstance(authkey, Mapping):
        keys = authkey  # looked up live: the application may add interfaces later

        def from_mapping(ident: str) -> bytes | None:
            key = keys.get(ident)
            return None if key is None else check_key(key)

        return from_mapping
    if callable(authkey):
        lookup = authkey

        def checked(ident: str) -> bytes | None:
            key = lookup(ident)
            return None if key is None else check_key(key)

        return checked
    raise InvalidArgumentError(
        f"authkey must be bytes, a mapping or a callable, not {type(authkey).__name__}"
    )
