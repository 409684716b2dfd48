"""Loads the shared fixtures and markers of pymasep-comm's test suites
(:mod:`pymasep.comm.core.testing.plugin`)."""

pytest_plugins = ["pymasep.comm.core.testing.plugin"]
