"""SpikingJelly 0.0.0.0.14's CuPy backend on numpy >= 1.24, without changing numpy for anyone else.

``spikingjelly/activation_based/auto_cuda/base.py`` checks kernel arguments in ``CKernel.check_ctypes``
with ``value.dtype == np.int``; numpy 1.24 removed that alias (it was the builtin ``int``), so every
LIF/IF/PLIF launch with ``backend='cupy'`` raises ``AttributeError``. The fix gives that one module a
read-through view of numpy that also answers the removed aliases with the builtins they used to be
(so ``dtype == np.int`` compares against ``dtype(int)`` exactly as under numpy < 1.24). The global
``numpy`` module, and every other module's reference to it, stay untouched.
"""

from __future__ import annotations

import builtins
import types
from typing import Any

import numpy

SJ_BASE_MODULE = "spikingjelly.activation_based.auto_cuda.base"

REMOVED_ALIASES: dict[str, Any] = {name: getattr(builtins, name)
                                   for name in ("int", "float", "bool", "object", "complex", "str")}
"""numpy aliases of builtins removed in numpy 1.24 (deprecated since 1.20), mapped to what they were."""


class NumpyWithAliases(types.ModuleType):
    """A stand-in for ``numpy`` in one module's globals: numpy's attributes plus the removed aliases."""

    def __init__(self, wrapped: types.ModuleType = numpy) -> None:
        super().__init__(wrapped.__name__, wrapped.__doc__)
        self.__wrapped__ = wrapped

    def __getattr__(self, name: str) -> Any:  # only called for names not set on the proxy itself
        if name in REMOVED_ALIASES:  # numpy's own name if it has one again (numpy 2: np.bool), else the builtin
            return vars(self.__wrapped__).get(name, REMOVED_ALIASES[name])
        return getattr(self.__wrapped__, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__wrapped__)) | set(REMOVED_ALIASES))


def patch_spikingjelly_numpy() -> bool:
    """Give SpikingJelly's ``auto_cuda.base`` the numpy view above; idempotent.

    Returns True when the module's ``np`` is (now) the view, False when nothing needed changing
    (a numpy that still has ``np.int``).
    """
    import importlib

    base = importlib.import_module(SJ_BASE_MODULE)
    current = getattr(base, "np", None)
    if isinstance(current, NumpyWithAliases):
        return True
    if current is None or hasattr(current, "int"):
        return False
    base.np = NumpyWithAliases(current)
    return True
