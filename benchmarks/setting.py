"""The setting the method benchmarks share: the built-in dataset, small_cnn, an original and a retrain.

Built with the runner's :func:`~unlearnkit.runner.setting.resolve_setting`, like every bench.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnkit.engine.tensors import TensorSet
from unlearnkit.engine.train import Runtime, accuracy, train_model
from unlearnkit.methods import UnlearnData
from unlearnkit.metrics.efficiency import Cost, measure
from unlearnkit.runner.setting import make_setting_config, resolve_setting


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
    s = resolve_setting(make_setting_config(forget=forget_spec))
    original = train_model(s.spec, s.sets.train, s.sets.val, s.recipe, seed=seed).model
    with measure(s.runtime.device) as cost:
        retrained = train_model(s.spec, s.sets.retain, s.sets.val, s.recipe, seed=seed).model
    return Setting(forget_spec, len(s.forget.indices), original, retrained, cost, s.unlearn_data, s.sets.test, s.runtime)
