import pytest
from libreoffice import make_profile


@pytest.fixture(scope="session")
def calc_profile(tmp_path_factory):
    """One LibreOffice user profile for the whole run: Calc starts faster the second time."""
    return make_profile(tmp_path_factory.mktemp("calc-profile"))
