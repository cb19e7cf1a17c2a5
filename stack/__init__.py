"""The tunstack kernel core."""
from .stack import Stack, StackConfig

__all__ = ["Stack", "StackConfig"]
