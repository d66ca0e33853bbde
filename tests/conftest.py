import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import hepml  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    hepml.manual_seed(1234)
    yield
