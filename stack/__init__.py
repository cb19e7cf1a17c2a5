"""The tunstack kernel core.

  stack        the Stack: builds the protocol cores, owns interfaces, routes, the nursery
  timers       the timer service that drives the timed cores (contracts.TimedCore)
  plugins      tunstack.protocols / tunstack.drivers entry points
  socket, stream, ndd_socket, sockaddr, trio_compat   the socket layer and its trio face
  atm_switch   the emulated ATM switch's trio side

`Stack` is resolved lazily, so importing one module of the package does not load them all.
"""
from typing import Any

__all__ = ["Stack", "StackConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import stack as _stack
        return getattr(_stack, name)
    raise AttributeError(name)
