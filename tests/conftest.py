"""Shared test fixtures: locating the real data, slow-test switch."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("GSCODEC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set GSCODEC_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data folder; skips the test when it is absent."""
    if not DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return DATA
