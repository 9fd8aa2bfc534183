"""The public API: every exported name is the documented object where it lives, and importing stays cheap."""

import importlib
import inspect
import subprocess
import sys

import pytest

import unlearnkit
import unlearnkit.metrics
from unlearnkit.registry import Registry


def _defined(obj) -> bool:
    """A class or function (also a wrapped one, e.g. cached), as opposed to an instance or a constant."""
    return inspect.isclass(obj) or (callable(obj) and hasattr(obj, "__qualname__"))


def _home(obj):
    """The object that ``obj``'s own module defines under its name."""
    return getattr(importlib.import_module(obj.__module__), obj.__qualname__, None)


@pytest.mark.parametrize("package", [unlearnkit, unlearnkit.metrics], ids=["unlearnkit", "unlearnkit.metrics"])
def test_every_exported_name_is_the_documented_object_of_its_module(package):
    names = package.__all__ if hasattr(package, "__all__") else [
        n for n, v in vars(package).items() if not n.startswith("_") and not inspect.ismodule(v)]
    assert len(names) == len(set(names)), "a name is exported twice"
    checked = 0
    for name in names:
        if name == "__version__":
            assert isinstance(package.__version__, str) and package.__version__.count(".") == 2
            continue
        obj = getattr(package, name)
        if _defined(obj):
            assert obj.__module__.startswith("unlearnkit."), f"{name} comes from {obj.__module__}"
            assert _home(obj) is obj and obj.__name__ == name, f"{package.__name__}.{name} is not {obj.__module__}.{name}"
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
            checked += 1
        elif isinstance(obj, Registry):
            assert len(obj) > 0, f"the registry {name} is empty"
        else:  # constants
            assert isinstance(obj, (int, float, str, tuple)), f"{name} is a {type(obj).__name__}"
    assert checked >= 10


def test_unknown_names_raise_and_star_import_gives_exactly_the_api():
    with pytest.raises(AttributeError, match="no_such_name"):
        unlearnkit.no_such_name  # noqa: B018
    namespace: dict = {}
    exec("from unlearnkit import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(unlearnkit.__all__)
    assert dir(unlearnkit) == sorted(unlearnkit.__all__)


def test_importing_the_package_does_not_import_torch():
    # Names load on first use, so `unlearnkit --help` does not pay for torch.
    code = "import sys, unlearnkit; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
