"""Outside tools the tests need (Debian packages): skipped when missing on a workstation,
never skipped in CI, where .ci/run installs them."""

import os
import shutil

import pytest


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is not None:
        return path
    message = f"{tool} is not installed (Debian package {package}; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
