"""Unlearning algorithms, one module each, registered in METHODS by their own decorator.

Every module in this package other than ``base``, ``checks``, ``common`` and ``requirements`` is imported here, so adding a method
is adding one file: its name lives only in its ``@METHODS.register`` line.
"""

import importlib
import pkgutil

from unlearnkit.methods.base import (
    METHODS,
    UnlearnData,
    UnlearnResult,
    clone,
    method_config,
    run_method,
)

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name not in ("base", "checks", "common", "requirements"):
        importlib.import_module(f"{__name__}.{_module.name}")
