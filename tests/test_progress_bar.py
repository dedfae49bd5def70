"""The user's TQDM_DISABLE reaches every bar the package shows (tqdm reads it at import)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "from diffusiontools.progress_bar import progress_bar\n"
    "print(progress_bar(range(2)).disable, progress_bar(range(2), shown=False).disable)"
)


@pytest.mark.parametrize("setting, shown_bar_disabled", [(None, "False"), ("1", "True")])
def test_tqdm_disable_hides_a_shown_bar_and_a_hidden_bar_stays_hidden(setting, shown_bar_disabled):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    if setting is not None:
        env["TQDM_DISABLE"] = setting
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [shown_bar_disabled, "True"]
