"""unlearnkit: machine unlearning for image classifiers, and the measurement of whether it worked.

The public API, name by name. Names load on first use, so ``unlearnkit --help`` does not pay for
importing torch and scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "unlearnkit.data": ("DATASETS", "ImageDataset"),
    "unlearnkit.data.splits": ("FORGET_SELECTORS", "ForgetSet", "retain_indices", "select_forget"),
    "unlearnkit.engine.ensemble": ("train_seeds",),
    "unlearnkit.engine.checkpoint": ("load_checkpoint", "save_checkpoint"),
    "unlearnkit.engine.features": ("penultimate",),
    "unlearnkit.engine.train": ("TrainConfig", "default_recipe", "train_model"),
    "unlearnkit.errors": ("InputError",),
    "unlearnkit.methods": ("METHODS", "UnlearnData", "method_config", "run_method"),
    "unlearnkit.methods.requirements": ("verdict",),
    "unlearnkit.metrics": ("final_score", "forgetting_quality", "klom", "logit_scaled_confidence", "loss_mia", "margins",
                           "score_intervals", "svc_mia", "ulira"),
    "unlearnkit.models": ("MODELS", "ModelSpec", "build_model", "model_parts"),
    "unlearnkit.runner": ("Backend", "BenchJob", "SettingConfig", "Setting", "TrainJob", "UnlearnJob", "make_bench_job",
                          "make_setting_config", "resolve_setting", "run_bench", "run_train", "run_unlearn", "run_work"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'unlearnkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
