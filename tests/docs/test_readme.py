"""README.md is the short front page: it stays short, and its links lead somewhere."""

import re
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.paths import ROOT

MAX_README_LINES = 250
# [text](target) and [text](target "title"); images too.
LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
# The folder READMEs that point into docs/.
POINTERS = ("README.md", "bench/README.md", "loadtests/README.md", "dashboards/README.md")


def relative_links(markdown: str) -> list[str]:
    targets = []
    for target in LINK.findall(markdown):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith("#"):
            continue  # a web address, or a place in the same file
        targets.append(unquote(parts.path))
    return targets


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < MAX_README_LINES


@pytest.mark.parametrize("readme", POINTERS)
def test_every_relative_link_leads_to_a_file(readme: str) -> None:
    path = ROOT / readme
    links = relative_links(path.read_text(encoding="utf-8"))
    assert links, f"{readme} links nowhere"
    missing = [link for link in links if not (path.parent / link).is_file()]
    assert missing == []


def test_the_link_finder_finds_links() -> None:
    text = '[a](docs/api.md#x) [b](https://example.org) [c](#top) [d](../docs/x%20y.md "t")'
    assert relative_links(text) == ["docs/api.md", "../docs/x y.md"]
