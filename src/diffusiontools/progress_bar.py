"""Progress bars that the user's tqdm settings reach.

tqdm reads ``TQDM_*`` environment variables (``TQDM_DISABLE=1``, ``TQDM_MININTERVAL``, ...) as
new defaults for its arguments when it is imported, but an argument passed explicitly wins. A bar
that passed ``disable=False`` to be shown would therefore ignore ``TQDM_DISABLE``; this module's
bars pass ``disable`` only to hide one.
"""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(iterable=None, *, shown: bool = True, **options) -> tqdm:
    """A tqdm bar over ``iterable`` (or of ``total=`` steps) with tqdm's ``options``: hidden
    where ``shown`` is False, else shown unless the user's ``TQDM_DISABLE`` hides it."""
    if not shown:
        options["disable"] = True
    return tqdm(iterable, **options)
