"""``python -m diffusiontools`` (also what ``torchrun -m diffusiontools`` runs)."""

import sys

from .cli import main

sys.exit(main())
