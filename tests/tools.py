"""Outside tools some tests need (wrk, chromium): skipped with the reason where missing, but
never skipped in CI, whose .ci/run installs them."""

import os
import shutil

import pytest


def require(tool: str, install: str) -> str:
    found = shutil.which(tool)
    if found is None:
        reason = f"{tool} is not installed ({install})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; .ci/run installs it, so CI must have it")
        pytest.skip(reason)
    return found
