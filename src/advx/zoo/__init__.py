"""Small reference architectures and named pretrained models: ``load_model("fmnist-cnn")``.

Weights are safetensors files with a JSON of metadata beside them (architecture,
data, epochs, seed, clean test accuracy, git revision, the command that
reproduces them); see ``docs/data_and_models.md``.
"""

from advx.zoo.architectures import ARCHITECTURES, LeNet, WideCNN, build
from advx.zoo.loading import (
    ZOO,
    ExportedModule,
    ZooEntry,
    git_revision,
    load_model,
    model_info,
    save_model,
    sidecar_path,
    validate_sidecar,
    weights_path,
)

__all__ = ["ARCHITECTURES", "LeNet", "WideCNN", "build", "ZOO", "ZooEntry", "load_model", "model_info",
           "save_model", "sidecar_path", "weights_path", "ExportedModule", "git_revision", "validate_sidecar"]
