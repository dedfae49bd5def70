"""``python -m diffusiontools`` (also what ``torchrun -m diffusiontools`` runs)."""

from .cli import run

run()
