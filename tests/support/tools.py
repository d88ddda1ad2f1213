"""Outside tools the tests need: skipped when missing on a workstation, never skipped in CI,
where .ci/run installs the Debian packages among them."""

import os
import shutil

import pytest


def require(tool: str, package: str) -> str:
    return require_installed(tool, f"Debian package {package}; .ci/run installs it")


def require_installed(tool: str, where_from: str) -> str:
    path = shutil.which(tool)
    if path is not None:
        return path
    message = f"{tool} is not installed ({where_from})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


# Debian's Chromium, headless, as root, on a machine whose only network is loopback: without
# the background-networking flags it keeps trying to reach outside hosts.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
