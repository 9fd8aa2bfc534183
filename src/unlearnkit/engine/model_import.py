"""Models from files: our checkpoints and plain PyTorch state dicts, checked against a dataset.

``unlearnkit unlearn``, ``bench`` and ``forget`` load a trained model through :func:`load_model`, so
a checkpoint that does not fit the data is refused the same way everywhere. A state dict carries no
architecture; :func:`infer_architecture` finds the registered one whose tensors it holds, and when
none fits, says which part differs (class count, input channels, input size).

Every unreadable file is an :class:`~unlearnkit.errors.InputError` naming the file, raised before
any work: a text file, random bytes and a pickled whole model each say what they are.
"""

from __future__ import annotations

import dataclasses
import pickle
import typing
import zipfile
from pathlib import Path
from typing import Any

import torch

from unlearnkit.config import from_dict, to_dict
from unlearnkit.data.base import ImageDataset
from unlearnkit.engine.checkpoint import load_checkpoint
from unlearnkit.errors import InputError
from unlearnkit.models import MODELS, ModelSpec, build_model, model_parts

# Suffixes read as plain PyTorch state dicts (torch.load with weights_only=True).
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")
# How many tensors an error message lists.
LISTED = 5
# What torch.save writes: a zip archive (torch >= 1.6), or a pickle stream (the legacy format).
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"
_CONVERT = "load it where its code is available and save only the weights: torch.save(model.state_dict(), 'model.pth')"


def first_items(items: list, limit: int = LISTED) -> str:
    """The first ``limit`` items joined by commas, and how many more there are."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(map(str, items[:limit])) + more


def read_state_dict(path: str | Path, *, where: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors a ``.pt``/``.pth``/``.bin`` file holds, read without running any pickled code.

    Accepts a state dict, a dict holding one under ``state_dict``, ``model`` or ``model_state_dict``,
    and strips DataParallel's ``module.`` prefix.

    Raises:
        InputError: the file is text, random bytes, truncated, a pickled whole model, or holds no
            tensors; the message names the file (as ``where``, default "checkpoint PATH").
    """
    path = Path(path)
    where = where or f"checkpoint {path}"
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise InputError(f"{where}: cannot read it ({exc})") from None
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        # Checked before torch.load, whose unpickler fails on such bytes with errors that blame the format.
        what = "a text file" if _looks_like_text(head) else "neither a zip archive nor a pickle stream"
        raise InputError(f"{where} is not a PyTorch file ({what}); expected a state dict saved with "
                         "torch.save(model.state_dict(), PATH), or a .safetensors checkpoint written by unlearnkit")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:  # a class or function the file needs to rebuild
            glob = next((line.strip() for line in text.splitlines() if "global" in line.lower()), "")
            raise InputError(f"{where} is a pickled object that needs arbitrary code to load ({glob[:160]}); "
                             f"unlearnkit reads only plain state dicts. To convert it, {_CONVERT}") from None
        raise InputError(f"{where} is not a readable PyTorch file: it is corrupt, truncated or not written by "
                         "torch.save") from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError, AttributeError,
            UnicodeDecodeError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{where} is not a readable PyTorch file ({reason})") from None
    if isinstance(raw, dict) and not _tensors_only(raw):
        inner = next((raw[k] for k in ("state_dict", "model", "model_state_dict") if isinstance(raw.get(k), dict)), None)
        raw = inner if inner is not None else raw
    if not isinstance(raw, dict) or not raw or not _tensors_only(raw):
        what = f"a dict with keys {first_items(list(raw))}" if isinstance(raw, dict) else type(raw).__name__
        raise InputError(f"{where} holds {what}, not a state dict of tensors; {_CONVERT}")
    if all(k.startswith("module.") for k in raw):  # saved from DataParallel / DistributedDataParallel
        raw = {k.removeprefix("module."): v for k, v in raw.items()}
    return raw


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 32 or b in (9, 10, 13) for b in head)


def _tensors_only(d: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def infer_architecture(state: dict[str, torch.Tensor], ds: ImageDataset, *, model: str | None = None,
                       model_options: dict | None = None, where: str = "checkpoint") -> tuple[str, Any]:
    """The registered architecture and config whose parameters ``state`` holds, for ``ds``'s images.

    Tries ``model`` (default: every registered model, full-size first) with each combination of its
    config's choice fields (e.g. resnet18's ``stem``), other fields from ``model_options`` or defaults.

    Raises:
        InputError: no architecture matches; where one has the same tensors but another class count,
            input channels or input size, says which.
    """
    # Without a name, the architectures the package registers (a factory named earlier in this process is not guessed).
    names = [model] if model else sorted((n for n in MODELS.names() if not MODELS.entry(n).meta.get("external")),
                                         key=lambda n: MODELS.entry(n).meta.get("test", False))
    near: list[tuple[int, str]] = []
    c, size = ds.image_shape[0], ds.image_shape[1]
    for name in names:
        entry = MODELS.entry(name)
        for cfg in _config_variants(entry.config, model_options, name):
            spec = ModelSpec(name, ds.num_classes, c, size, cfg)
            with torch.device("meta"):
                probe = build_model(spec)
            problem = mismatch(state, probe, spec, ds)
            if problem is None:
                return name, cfg
            if not problem.startswith("it holds"):  # the same tensors, some of another shape
                wrong = sum(tuple(v.shape) != tuple(state[k].shape) for k, v in probe.state_dict().items())
                near.append((wrong, problem))
    if near:
        raise InputError(f"{where}: {min(near)[1]}")
    asked = f"model {model}" if model else f"any registered architecture ({', '.join(names)})"
    raise InputError(f"{where} does not match {asked}: it holds tensors {first_items(list(state))}. "
                     "Name the architecture with --model NAME and its settings with --set model.FIELD=VALUE")


def _config_variants(config_cls: type | None, options: dict | None, name: str) -> list[Any]:
    if config_cls is None:
        return [None]
    hints = typing.get_type_hints(config_cls)
    choices = {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(config_cls)
               if typing.get_origin(hints[f.name]) is typing.Literal and f.name not in (options or {})}
    combos: list[dict] = [{}]
    for key, values in choices.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return [from_dict(config_cls, {**c, **(options or {})}, where=f"model.{name}") for c in combos]


def mismatch(state: dict[str, torch.Tensor], probe: torch.nn.Module, spec: ModelSpec, ds: ImageDataset) -> str | None:
    """None if ``state`` loads into ``probe``; else what differs, the class count and input first."""
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if set(want) != set(have):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        return (f"it holds {len(have)} tensors, {spec.name} has {len(want)}"
                + (f"; missing {first_items(missing)}" if missing else "")
                + (f"; unexpected {first_items(extra)}" if extra else ""))
    wrong = [k for k in want if want[k] != have[k]]
    if not wrong:
        return None
    parts = model_parts(probe, spec)
    names = {id(p): n for n, p in probe.named_parameters()}
    head = {names[id(p)] for p in parts.classifier.parameters()}
    stem = {names[id(p)] for p in parts.stem.parameters()}
    what = []
    head_w = next((k for k in wrong if k in head and len(want[k]) == 2), None)
    if head_w:
        what.append(f"its classifier has {have[head_w][0]} classes ({head_w} {list(have[head_w])}); "
                    f"{ds.name} has {ds.num_classes}")
    stem_w = next((k for k in wrong if k in stem and k.endswith("weight")), None)
    if stem_w and len(want[stem_w]) == 4 and have[stem_w][1] != want[stem_w][1]:
        what.append(f"its first layer takes {have[stem_w][1]}-channel images ({stem_w} {list(have[stem_w])}); "
                    f"{ds.name}'s have {ds.image_shape[0]} channels")
    elif stem_w and len(want[stem_w]) == 2:
        what.append(f"its first layer takes {have[stem_w][1]} inputs ({stem_w} {list(have[stem_w])}), "
                    f"{ds.name}'s {ds.image_shape[0]}x{ds.image_shape[1]}x{ds.image_shape[2]} images give "
                    f"{want[stem_w][1]}: the input size differs")
    rest = [k for k in wrong if k not in (head_w, stem_w)]
    if rest and not what:
        what.append(f"a {spec.name} with config {to_dict(spec.config)} has other shapes: "
                    + first_items([f"{k} {list(have[k])} vs {list(want[k])}" for k in rest])
                    + "; set its fields with --set model.FIELD=VALUE")
    return "; ".join(what)


def load_model(path: str | Path, spec: ModelSpec, ds: ImageDataset,
               device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load the model at ``path`` as ``spec`` for ``ds``, checking that it fits; returns (model in eval mode, info).

    ``.safetensors``: our checkpoint; its sidecar must name ``spec``'s architecture and ``ds``'s data,
    and ``info`` is the sidecar. ``.pt``, ``.pth``, ``.bin``: a plain state dict of ``spec``;
    ``info`` names the architecture only. ``info["format"]`` says which.

    Raises:
        InputError: an unreadable file, or one whose architecture, class count, input size or
            training data does not fit (saying which).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        model, saved, info = load_checkpoint(path, device=device)
        if info.get("dataset_fingerprint") not in (None, ds.fingerprint):
            raise InputError(f"checkpoint {path} was trained on dataset {info['dataset_fingerprint']}, "
                             f"not on this {ds.name} ({ds.fingerprint}); pass the same dataset settings")
        if (saved.num_classes, saved.in_channels, saved.image_size) != (ds.num_classes, *ds.image_shape[:2]):
            raise InputError(f"checkpoint {path} expects {saved.num_classes} classes of {saved.in_channels}x"
                             f"{saved.image_size}px images; {ds.name} has {ds.num_classes} of {ds.image_shape}")
        if saved.name != spec.name or to_dict(saved.config) != to_dict(spec.config):
            raise InputError(f"checkpoint {path} is a {saved.name} ({to_dict(saved.config)}); the setting asks for "
                             f"{spec.name} ({to_dict(spec.config)})")
        return model.eval(), {**info, "format": "unlearnkit safetensors"}
    state = read_state_dict(path)
    with torch.device("meta"):
        probe = build_model(spec)
    problem = mismatch(state, probe, spec, ds)
    if problem:
        raise InputError(f"checkpoint {path}: {problem}")
    model = build_model(spec)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), {"format": "PyTorch state dict",
                                     "model": {"name": spec.name, "config": to_dict(spec.config)}}
