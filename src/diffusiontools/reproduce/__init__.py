"""The report's study end to end at a chosen scale: ``reproduce(get_scale("cpu"), out, device)``."""

from .pipeline import reproduce
from .scales import SCALES, get_scale

__all__ = ["SCALES", "get_scale", "reproduce"]
