"""The training recipe A_M(D): class-weighted cross-entropy, Adam, cosine schedule, best-val checkpoint."""

from __future__ import annotations

import copy
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.engine.compute import count_compute
from unlearnkit.engine.seeding import derive_seed, torch_generator
from unlearnkit.engine.tensors import TensorSet, class_weights
from unlearnkit.errors import InputError
from unlearnkit.models import ModelSpec, build_model


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained from scratch (the original A_M(D), and every retrain)."""

    epochs: int = 20
    batch_size: int = 128
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    class_weighted: bool = True
    keep_best: bool = True
    hflip: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise InputError(f"train.lr must be positive, got {self.lr}")


# The proposal's recipe for ResNet-18 (Adam lr 1e-4, weight decay 5e-3); the small models use a
# larger step, chosen so that small_cnn memorises the synthetic training people within 20 epochs.
RECIPES: dict[str, TrainConfig] = {
    "resnet18": TrainConfig(epochs=30, lr=1e-4, weight_decay=5e-3),
    "small_cnn": TrainConfig(epochs=20, lr=3e-3, weight_decay=5e-4),
    "mlp": TrainConfig(epochs=20, lr=1e-3, weight_decay=5e-4),
}


def default_recipe(model_name: str) -> TrainConfig:
    """The recipe for ``model_name`` (test_* variants share their full-size model's)."""
    return RECIPES.get(model_name.removeprefix("test_"), TrainConfig())


@dataclass(frozen=True)
class Runtime:
    """Resolved device and numeric settings for a run."""

    device: torch.device
    bf16: bool
    channels_last: bool

    def autocast(self):
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    """Pick the device, bf16 autocast and memory format that ``cfg`` asks for ("auto" = fastest here)."""
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"train.device={cfg.device!r} but CUDA is not available here")
    precision = cfg.precision
    if precision == "auto":
        # A test run can force one precision on any machine (CI runs the behaviour tests under both).
        precision = os.environ.get("UNLEARNKIT_PRECISION", "auto")
        if precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"UNLEARNKIT_PRECISION={precision!r}: expected auto, fp32 or bf16")
    if precision == "auto":
        if device.type == "cuda":
            # Measured on an H200 (benchmarks/results/bench_training-cuda-*.json): at 32x32 and batch
            # 128, bf16 autocast ran 6-9 % slower than fp32 for resnet18 and small_cnn (launch-bound).
            bf16 = False
        else:
            # bf16 pays off only where the CPU has native bf16 dot products (AVX512-BF16 or AMX).
            bf16 = torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX") or _cpu_has_bf16()
    else:
        bf16 = precision == "bf16"
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and bf16)
    return Runtime(device, bf16, channels_last)


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@dataclass
class TrainResult:
    """A trained model and how it got there (``compute``: example passes, engine.compute, the
    validation predictions of a best-epoch checkpoint included)."""

    model: nn.Module
    seed: int
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    compute: float = 0.0


def init_model(spec: ModelSpec, seed: int) -> nn.Module:
    """A freshly initialised model; the same ``seed`` gives the same weights, whatever ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        return build_model(spec)


def train_model(
    spec: ModelSpec,
    train: TensorSet,
    val: TensorSet | None,
    cfg: TrainConfig,
    *,
    seed: int,
) -> TrainResult:
    """Train one model from scratch with the recipe ``cfg``.

    Initialisation, batch order and dropout all derive from ``seed`` alone, so a model is identical
    whether it is trained alone or as one of many.

    Args:
        spec: The architecture and data shape.
        train: Training examples.
        val: Validation examples for checkpoint selection (``cfg.keep_best``); may be None.
        cfg: The recipe.
        seed: This model's seed.
    """
    if len(train) == 0:
        raise InputError("cannot train on an empty training set")
    rt = resolve_runtime(cfg)
    model = init_model(spec, seed).to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train, val = train.to(rt.device), val.to(rt.device) if val is not None else None
    weights = class_weights(train.y, spec.num_classes).to(rt.device) if cfg.class_weighted else None
    opt = make_optimizer(model.parameters(), cfg)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    sched = make_schedule(opt, cfg, cfg.epochs * steps_per_epoch)
    order = torch_generator(derive_seed(seed, "order"))
    result = TrainResult(model=model, seed=seed, best_epoch=cfg.epochs)
    best_acc, best_state = -1.0, None
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[rt.device] if rt.device.type == "cuda" else []), count_compute() as counter:
        torch.manual_seed(derive_seed(seed, "dropout"))
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            total, count = 0.0, 0
            for x, y in train.batches(cfg.batch_size, generator=order, channels_last=rt.channels_last):
                if cfg.hflip:
                    flip = torch.rand(len(x), device=x.device) < 0.5
                    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
                with rt.autocast():
                    loss = F.cross_entropy(model(x), y, weight=weights)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                result.steps += 1
                total += float(loss.detach()) * len(y)
                count += len(y)
            record = {"epoch": epoch, "train_loss": total / count}
            if val is not None and len(val) and cfg.keep_best:
                acc = accuracy(model, val, runtime=rt)
                record["val_acc"] = acc
                if acc > best_acc:
                    best_acc, result.best_epoch = acc, epoch
                    best_state = copy.deepcopy(model.state_dict())
            result.history.append(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    result.compute = counter.total
    model.eval()
    return result


@torch.no_grad()
def predict(model: nn.Module, data: TensorSet, *, runtime: Runtime | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Float32 logits [n, classes] of ``model`` (in eval mode) on ``data``, on the CPU."""
    rt = runtime or resolve_runtime(TrainConfig(device=str(next(model.parameters()).device)))
    was_training = model.training
    model.eval()
    out = []
    data = data.to(rt.device)
    for x, _ in data.batches(batch_size, channels_last=rt.channels_last):
        with rt.autocast():
            out.append(model(x).float().cpu())
    model.train(was_training)
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


def accuracy(model: nn.Module, data: TensorSet, *, runtime: Runtime | None = None, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``data`` (nan for an empty set), predicted ``batch_size`` examples at a time."""
    if len(data) == 0:
        return float("nan")
    logits = predict(model, data, runtime=runtime, batch_size=batch_size)
    return float((logits.argmax(1) == data.y.cpu()).float().mean())
