"""Test helpers for pymasep-comm's own test suites: not part of the API.

They need pytest, which pymasep-comm does not depend on. The test suites of the three
distributions and the integration tests load :mod:`.plugin` through their
``conftest.py`` (``pytest_plugins = ["pymasep.comm.core.testing.plugin"]``), and import
the helpers by name: :mod:`.peers` (raw-socket peers, recording handlers, streams that
test the framing) and :mod:`.netns` (network namespaces for the tests that send
multicast), :mod:`.processes` (children run in a process group of their own, killed
with all they started) and :mod:`.tls` (throwaway TLS contexts, with trustme). Nothing here
loads unless a test suite asks for it.
"""
