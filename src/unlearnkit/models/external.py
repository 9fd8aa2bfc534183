"""A user's own architecture: a factory named ``package.module:function`` or ``path/to/file.py:function``.

Any name of that form given where a registered model name is expected (``--model``, a setting, a
checkpoint's sidecar) imports the factory and registers it in ``MODELS`` under that name on first
use, so that everything keyed by a model name (settings, caches, checkpoints, worker processes
that rebuild the setting) treats it like ``small_cnn``.

The factory returns a fresh ``torch.nn.Module`` mapping images [batch, C, H, W] to logits
[batch, classes]. It takes ``num_classes``, ``in_channels`` and ``image_size`` where it names them
(the dataset gives them), and every other parameter it has becomes a model setting
(``--set model.NAME=VALUE``), typed by its annotation or its default, which every such parameter
must have::

    def build(num_classes: int, in_channels: int = 3, width: int = 32) -> nn.Module: ...

``unlearnkit --model mymodels.py:build --set model.width=64`` then builds ``build(num_classes=10,
in_channels=3, width=64)``. A module name is imported with the working directory on the import
path, as ``python -m`` would; a file is loaded from its path (relative to the working directory).
What methods need from an architecture is found from the model itself (``models.parts``), never
from its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from torch import nn

from unlearnkit.config import to_dict
from unlearnkit.errors import InputError

# Parameters the dataset fills in; the factory takes whichever of them it names.
DATA_PARAMETERS = ("num_classes", "in_channels", "image_size")
# Setting types a --set value can be parsed into.
SETTING_TYPES = (int, float, bool, str)


def is_factory_name(name: str) -> bool:
    """Whether ``name`` names a factory (``module:function``) rather than a registered model."""
    return ":" in name and not name.startswith(":") and not name.endswith(":")


def load_factory(name: str) -> Callable[..., nn.Module]:
    """The function ``name`` (``package.module:function`` or ``path/to/file.py:function``) names.

    Raises:
        InputError: the module or file cannot be found or imported, or has no such callable; the
            message names it.
    """
    where, _, attr = name.rpartition(":")
    if where.endswith(".py") or os.sep in where or "/" in where:
        module = _module_from_file(Path(where).expanduser(), name)
    else:
        module = _module_by_name(where, name)
    fn = getattr(module, attr, None)
    if not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise InputError(f"model {name!r}: {where} has no function {attr!r}"
                         + (f"; it defines {', '.join(found[:8])}" if found else ""))
    return fn


def _module_by_name(module: str, name: str):
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` would: the user's package from where they run
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"model {name!r}: cannot import module {module!r} ({exc}); give an importable "
                         "module (run from its folder or put it on PYTHONPATH) or a file: path/to/file.py:function") from None


def _module_from_file(path: Path, name: str):
    if not path.is_file():
        raise InputError(f"model {name!r}: file {path} does not exist (relative paths are read from {os.getcwd()})")
    resolved = path.resolve()
    # One module per file, named by its path, so that its classes can be found again (copy, pickle).
    module_name = "unlearnkit_user_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12] + "_" + path.stem
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise InputError(f"model {name!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (SyntaxError, ImportError) as exc:
        del sys.modules[module_name]
        raise InputError(f"model {name!r}: cannot load {path} ({type(exc).__name__}: {exc})") from None
    return module


def factory_config(fn: Callable[..., Any], name: str) -> type:
    """A frozen dataclass with one field per setting of ``fn`` (its parameters but the data's).

    Raises:
        InputError: a setting without a default, or whose type a --set value cannot give.
    """
    hints = typing.get_type_hints(fn) if not isinstance(fn, type) else typing.get_type_hints(fn.__init__)
    fields = []
    for p in inspect.signature(fn).parameters.values():
        if p.name in DATA_PARAMETERS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise InputError(f"model {name!r}: parameter {p.name!r} has no default; a factory takes "
                             f"{', '.join(DATA_PARAMETERS)} from the dataset and needs a default for every other one")
        kind = hints.get(p.name, type(p.default))
        if kind not in SETTING_TYPES:
            raise InputError(f"model {name!r}: parameter {p.name!r} is a {getattr(kind, '__name__', kind)}; "
                             "settings must be int, float, bool or str")
        fields.append((p.name, kind, dataclasses.field(default=p.default)))
    return dataclasses.make_dataclass(f"{name.rpartition(':')[2]}_settings", fields, frozen=True)


def factory_builder(fn: Callable[..., Any], name: str) -> Callable[..., nn.Module]:
    """``fn`` as a registered model builder: ``(num_classes, in_channels, image_size, cfg) -> nn.Module``."""
    takes = set(inspect.signature(fn).parameters)

    def build(num_classes: int, in_channels: int, image_size: int, cfg: Any) -> nn.Module:
        given = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size}
        model = fn(**{k: v for k, v in given.items() if k in takes}, **to_dict(cfg))
        if not isinstance(model, nn.Module):
            raise InputError(f"model {name!r} returned a {type(model).__name__}, not a torch.nn.Module")
        return model

    build.__doc__ = (inspect.getdoc(fn) or f"A model built by {name}.").splitlines()[0]
    build.__name__ = name
    return build


def register_factory(name: str) -> bool:
    """Register the factory ``name`` in ``MODELS`` (the registry's ``on_missing``); False if ``name`` names none."""
    from unlearnkit.models.base import MODELS

    if not is_factory_name(name):
        return False
    fn = load_factory(name)
    MODELS.register(name, config=factory_config(fn, name), external=True)(factory_builder(fn, name))
    return True
