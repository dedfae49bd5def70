"""Optional dependencies are refused in one sentence naming the option and the extra."""

import pytest

from diffusiontools.errors import DiffusionToolsError
from diffusiontools.optional import require


def test_installed_module_is_returned():
    import json

    assert require("json", "dev", "format=json") is json


def test_missing_module_names_the_option_and_the_extra():
    with pytest.raises(DiffusionToolsError) as caught:
        require("no_such_module_xyz", "diffusers", "format='diffusers'")
    assert str(caught.value) == (
        "format='diffusers' needs the optional package 'no_such_module_xyz', which is not "
        "installed; install it with: pip install 'diffusiontools[diffusers]'"
    )
