"""A model's penultimate features: the input of its classifier head, found without knowing the model.

The head is found generically, so that the same code serves small_cnn, mlp, resnet18 and a user's
model: every ``nn.Linear`` records its input as it is called, and the head is the last one called
whose ``out_features`` equals the width of the model's output (its number of classes). A model whose
head is not a Linear, or whose last class-wide Linear is not its head, names the head's module
instead (``head``, a dotted name as ``model.get_submodule`` takes it).

docs/feature_forgetting.md says what these features are used for (the feature-level forgetting
metric).
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnkit.engine.tensors import TensorSet
from unlearnkit.engine.train import Runtime, TrainConfig, resolve_runtime
from unlearnkit.errors import InputError


@torch.no_grad()
def features_and_logits(
    model: nn.Module,
    data: TensorSet,
    *,
    runtime: Runtime | None = None,
    batch_size: int = 1024,
    head: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The penultimate features [n, d] and the logits [n, classes] of ``model`` (in eval mode) on
    ``data``, both float32 on the CPU, from one forward pass per batch.

    The logits are bit for bit ``engine.train.predict``'s at the same ``batch_size`` and runtime
    (the same batches through the same model; the hooks only read).

    Args:
        model: Any classifier returning logits [batch, classes].
        data: The examples.
        runtime: Device and precision (None: float32 on the model's device).
        batch_size: Examples per forward pass.
        head: The dotted name of the head module whose input is the feature; None finds it (the
            last ``nn.Linear`` called whose ``out_features`` is the number of classes).

    Raises:
        InputError: ``head`` names no module of ``model``, or (``head`` None) no ``nn.Linear``
            with as many outputs as the model has classes was called; the message names the
            model's class.
    """
    rt = runtime or resolve_runtime(TrainConfig(device=str(next(model.parameters()).device)))
    if head is not None:
        try:
            modules = {head: model.get_submodule(head)}
        except AttributeError:
            raise InputError(f"{type(model).__name__} has no module {head!r} to take the head's input from") from None
    else:
        modules = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    # Inputs seen in the current batch, keyed by the head named, or by each Linear's width: the
    # last Linear of a width overwrites the earlier ones, so the head's is what remains.
    seen: dict[object, torch.Tensor] = {}

    def grab(key: object):
        def hook(module: nn.Module, args: tuple) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen[key] = args[0]
        return hook

    handles = [m.register_forward_pre_hook(grab(head if head is not None else m.out_features)) for m in modules.values()]
    was_training = model.training
    model.eval()
    features, logits = [], []
    try:
        for x, _ in data.to(rt.device).batches(batch_size, channels_last=rt.channels_last):
            seen.clear()
            with rt.autocast():
                out = model(x)
            found = seen.get(head if head is not None else out.shape[-1])
            if found is None:
                raise InputError(
                    f"{type(model).__name__}: no nn.Linear with {out.shape[-1]} outputs (its number of classes) was "
                    "called in its forward pass, so its classifier head's input cannot be found; name the head "
                    "module whose input is the feature")
            features.append(found.detach().float().flatten(1).cpu())
            logits.append(out.float().cpu())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not logits:
        return torch.zeros(0, 0), torch.zeros(0, 0)
    return torch.cat(features), torch.cat(logits)


def penultimate(
    model: nn.Module,
    data: TensorSet,
    runtime: Runtime | None = None,
    batch_size: int = 1024,
    *,
    head: str | None = None,
) -> torch.Tensor:
    """Float32 penultimate features [n, d] of ``model`` on ``data`` (see :func:`features_and_logits`)."""
    return features_and_logits(model, data, runtime=runtime, batch_size=batch_size, head=head)[0]
