"""The engine tests recycle their databases (see ``recycle_database`` in tests/conftest.py):
they are short and reach the database only from this process, so a used database reset to
the state of a fresh clone is as good as a new one, and much cheaper.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def recycle_database() -> bool:
    return True
