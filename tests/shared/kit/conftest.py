import pytest

from support.line_family import LineFamily


@pytest.fixture
def family() -> LineFamily:
    return LineFamily()
