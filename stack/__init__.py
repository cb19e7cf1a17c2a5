"""The tunstack kernel core.

`Stack` is resolved lazily: the NDD and protocol layers import `ndd.pktbuf` and
friends, and the Stack imports them back -- loading it on first use keeps that one-way.
"""
from typing import Any

__all__ = ["Stack", "StackConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import stack as _stack
        return getattr(_stack, name)
    raise AttributeError(name)
