"""The setting the method benchmarks share: the built-in dataset, small_cnn, an original and a retrain."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnkit.data.splits import retain_indices, select_forget
from unlearnkit.data.synthetic import SyntheticConfig, load_synthetic
from unlearnkit.engine.tensors import TensorSet, tensor_set, train_stats
from unlearnkit.engine.train import Runtime, accuracy, default_recipe, resolve_runtime, train_model
from unlearnkit.methods import UnlearnData, make_unlearn_data
from unlearnkit.metrics.efficiency import Cost, measure
from unlearnkit.models import ModelSpec


@dataclass
class Setting:
    forget_spec: str
    forget_size: int
    original: nn.Module
    retrained: nn.Module
    retrain_cost: Cost
    data: UnlearnData
    test: TensorSet
    runtime: Runtime

    def accuracies(self, model: nn.Module) -> dict[str, float]:
        """Forget, retain, val and test accuracy of ``model``."""
        sets = {"forget": self.data.forget, "retain": self.data.retain, "val": self.data.val, "test": self.test}
        return {name: accuracy(model, s, runtime=self.runtime) for name, s in sets.items()}


def synthetic_setting(forget_spec: str, seed: int = 0) -> Setting:
    """Train the original small_cnn on synthetic and one retrain without ``forget_spec`` (timed)."""
    ds = load_synthetic(SyntheticConfig())
    forget = select_forget(ds, forget_spec)
    spec = ModelSpec("small_cnn", ds.num_classes, 3, 32)
    cfg = default_recipe("small_cnn")
    rt = resolve_runtime(cfg)
    stats = train_stats(ds)
    val = tensor_set(ds, ds.indices("val"), stats=stats)
    original = train_model(spec, tensor_set(ds, ds.indices("train"), stats=stats), val, cfg, seed=seed).model
    with measure() as cost:
        retrained = train_model(spec, tensor_set(ds, retain_indices(ds, forget), stats=stats), val, cfg, seed=seed).model
    return Setting(forget_spec, len(forget.indices), original, retrained, cost,
                   make_unlearn_data(ds, forget, spec, cfg, rt), tensor_set(ds, ds.indices("test"), stats=stats), rt)
