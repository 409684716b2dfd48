"""Sphinx configuration of the pymasep-comm documentation, built by ``nox -s docs``.

The build is offline (no intersphinx, no external images or fonts) and strict: the
session passes ``-W --keep-going``, and every cross-reference must resolve
(``nitpicky``). The API pages document the installed distributions, so the session
installs them first.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.ext import napoleon
from sphinx.util import inspect as sphinx_inspect
from sphinx.util import typing as sphinx_typing

DOCS = Path(__file__).resolve().parent

project = "pymasep-comm"
author = "pymasep-comm developers"
copyright = "2026, pymasep-comm developers"
release = (DOCS.parent / "VERSION").read_text().strip()
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# migration-notes-interop.md is merged into migration.md by an include.
exclude_patterns = ["_build", "migration-notes-interop.md", "examples"]
nitpicky = True

# -- Markdown (MyST) ---------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
# protocol.md links to its own sections by their GitHub-style anchors (#the-v1-wire).
myst_heading_anchors = 4

# -- API reference -----------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
add_module_names = False
python_use_unqualified_type_names = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_attr_annotations = True

# register_type() returns the class it takes: show its TypeVar as what it stands for.
autodoc_type_aliases = {"_T": "type"}

# Offline, there is no inventory of the standard library or lxml to link their names
# to; every other reference must resolve.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(_thread|collections|enum|http|logging|os|pathlib|queue|selectors|socket|ssl|sys|threading"
        r"|typing|xml)\..+",
    ),
    (r"py:.*", r"(lxml\.)?etree\..+"),
    # The ParamSpec of a decorator's signature (settings.configurable).
    (r"py:class", r"~?_P"),
]

# -- HTML --------------------------------------------------------------------------
html_theme = "furo"
html_title = f"pymasep-comm {release}"
html_static_path = ["_static"]
html_show_sourcelink = False


def _google_docstring_unless_attribute(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Napoleon, except for the docstrings of attributes, data and properties.

    Napoleon reads the first line of those as ``type: description``, as Google style
    allows. Here they are prose ("I -> E : Init the initial state", "Disconnect reason:
    the peer said bye") and the types come from the annotations, so they stay as written.
    """
    if what not in ("attribute", "data", "property"):
        napoleon._process_docstring(app, what, name, obj, options, lines)


def _record_constructor_typehints(
    app: Sphinx, objtype: str, name: str, obj: object, *args: object
) -> None:
    """Record a class's parameter types from its ``__init__``, resolved.

    Sphinx records them from the class itself, where the string annotations of a module
    with ``from __future__ import annotations`` stay unresolved (sphinx-doc/sphinx#11674:
    ``log_level (LogLevel)`` instead of ``(str | int)``). This runs after it and
    records them again, from ``__init__``, the way signatures are shown.
    """
    init = getattr(obj, "__init__", None)
    if objtype not in ("class", "exception") or not inspect.isfunction(init):
        return
    aliases = app.config.autodoc_type_aliases
    try:
        signature = sphinx_inspect.signature(init, bound_method=True, type_aliases=aliases)
    except (TypeError, ValueError):
        return
    hints = app.env.temp_data.setdefault("annotations", {}).setdefault(name, {})
    for parameter in signature.parameters.values():
        if parameter.annotation is not parameter.empty:
            hints[parameter.name] = sphinx_typing.stringify_annotation(parameter.annotation)


def setup(app: Sphinx) -> None:
    """Swap napoleon's docstring handler for the one above; resolve class typehints."""
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _google_docstring_unless_attribute)
    # autodoc records the typehints at the default priority, 500.
    app.connect("autodoc-process-signature", _record_constructor_typehints, priority=600)
