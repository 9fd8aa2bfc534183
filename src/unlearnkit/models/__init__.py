"""Model architectures, registered in MODELS, and the per-architecture parts methods address."""

from unlearnkit.models.base import (
    MODELS,
    ModelParts,
    ModelSpec,
    build_model,
    model_parts,
    norm_parameters,
    reset_parameters,
)

# Importing a model module registers it.
from unlearnkit.models import mlp, resnet, small_cnn  # noqa: F401,E402
