"""docs/configuration.md lists every option as pymasep.comm.core.settings declares it.

The page's table is generated from the table of options (``markdown_table``), so it cannot
drift: this test fails when they differ, and ``python test_configuration_docs.py``
rewrites the page's table.
"""

from __future__ import annotations

import re
from pathlib import Path

from pymasep.comm.core.settings import markdown_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
_TABLE = re.compile(r"(<!-- options: begin -->\n)(.*?)(<!-- options: end -->)", re.DOTALL)


def generated(text: str) -> str:
    """The page ``text`` with the table of options as the settings module makes it."""
    return _TABLE.sub(lambda m: m[1] + markdown_table() + "\n" + m[3], text)


def test_the_configuration_page_lists_every_option_as_declared() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert _TABLE.search(text), f"{PAGE.name} has lost its table's markers"
    assert text == generated(text), (
        f"{PAGE.name} differs from the options: python {Path(__file__).name} rewrites it"
    )


if __name__ == "__main__":
    PAGE.write_text(generated(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
