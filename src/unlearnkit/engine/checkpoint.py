"""Checkpoints: weights in safetensors, everything else in a JSON sidecar. Nothing is pickled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from unlearnkit.config import from_dict, to_dict
from unlearnkit.errors import InputError
from unlearnkit.models import MODELS, ModelSpec, build_model
from unlearnkit.io import json_bytes, write_bytes


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "num_classes": spec.num_classes,
        "in_channels": spec.in_channels,
        "image_size": spec.image_size,
        "config": to_dict(spec.config),
    }


def spec_from_dict(raw: dict[str, Any]) -> ModelSpec:
    entry = MODELS.entry(raw["name"])
    cfg = from_dict(entry.config, raw.get("config") or {}, where="model") if entry.config else None
    return ModelSpec(raw["name"], int(raw["num_classes"]), int(raw["in_channels"]), int(raw["image_size"]), cfg)


def save_checkpoint(path: str | Path, model: torch.nn.Module, spec: ModelSpec, info: dict[str, Any]) -> None:
    """Write ``path`` (.safetensors) and its sidecar ``path.with_suffix('.json')``, each atomically.

    The sidecar is written last, so its presence marks a complete checkpoint (resume relies on it).
    """
    path = Path(path)
    weights, sidecar = checkpoint_bytes(model, spec, info)
    write_bytes(path, weights)
    write_bytes(path.with_suffix(".json"), sidecar)


def checkpoint_bytes(model: torch.nn.Module, spec: ModelSpec, info: dict[str, Any]) -> tuple[bytes, bytes]:
    """A checkpoint's two files as bytes: safetensors weights, and the JSON sidecar."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return save(state), json_bytes({"model": spec_to_dict(spec), **info})


def sidecar_info(kind: str, *, k: int, seed: int, recipe: Any, dataset_fingerprint: str,
                 forget_fingerprint: str | None, provenance: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The sidecar fields every checkpoint carries, then ``extra`` (what this kind of model adds).

    ``unlearnkit train``, ``unlearn`` and ``forget`` build their sidecars here, so a reader finds
    the same fields under the same names whichever command wrote the model.

    Args:
        kind: ``original``, ``retrain`` or ``unlearn``.
        k: The model's index in its run.
        seed: Its seed.
        recipe: The training recipe (a TrainConfig) the model was trained with, or its original was.
        dataset_fingerprint, forget_fingerprint: The data it saw (None: no forget set).
        provenance: Software and host (see :func:`unlearnkit.io.provenance`).
        extra: Fields of this kind of model (timings, cost, accuracy, method, ...).
    """
    return {"kind": kind, "k": k, "seed": seed, "train": to_dict(recipe), "dataset_fingerprint": dataset_fingerprint,
            "forget_fingerprint": forget_fingerprint, "provenance": provenance, **extra}


def read_sidecar(path: str | Path) -> tuple[ModelSpec, dict[str, Any]]:
    """The architecture and the sidecar of the checkpoint at ``path`` (its weights are not read).

    Raises:
        InputError: the checkpoint or its sidecar is missing, the sidecar is not our JSON, or the
            weights file is not safetensors (checked from its header, without loading the tensors).
    """
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist; expected a .safetensors file written by unlearnkit")
    if not sidecar.is_file():
        raise InputError(f"checkpoint {path} has no sidecar {sidecar.name}; it is incomplete or not from unlearnkit "
                         "(a plain state dict should be saved as .pth)")
    try:
        info = json.loads(sidecar.read_text())
        spec = spec_from_dict(info["model"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"checkpoint sidecar {sidecar}: cannot read the model description ({exc})") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError) as exc:
        raise InputError(f"checkpoint {path} is not a readable safetensors file ({exc})") from None
    return spec, info


def checkpoint_complete(path: str | Path) -> bool:
    path = Path(path)
    return path.is_file() and path.with_suffix(".json").is_file()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild the model saved at ``path`` and return (model in eval mode, spec, sidecar info)."""
    path = Path(path)
    spec, info = read_sidecar(path)
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"checkpoint {path} is not a readable safetensors file: {exc}") from None
    model = build_model(spec).to(device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"checkpoint {path} does not fit model {spec.name}: {exc}") from None
    model.eval()
    return model, spec, info
