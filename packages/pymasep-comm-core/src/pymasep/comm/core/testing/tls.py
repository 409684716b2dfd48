"""Throwaway TLS contexts for the tests and the benchmarks (needs trustme)."""

from __future__ import annotations

import ssl

from .peers import LOOPBACK


def loopback_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A fresh CA (trustme), a certificate for loopback, and the contexts of both sides.

    Returns:
        ``(server, client)``: the server's context holds the certificate, the client's
        trusts the CA.
    """
    import trustme  # only the suites that test TLS install it

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client
