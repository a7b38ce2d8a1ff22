"""The architecture registry: every network a model file can name, by the name it is stored
under. Model files, the interchange with PyTorch and ``Detector.from_state_dict`` look
architectures up here, nowhere else."""

from __future__ import annotations

from qdaed.errors import ModelFileError
from qdaed.models import resnet, student
from qdaed.models.resnet import ResNet
from qdaed.models.student import StudentLSTM

ARCHITECTURES = {"StudentLSTM": StudentLSTM, "ResNet": ResNet}

# {state_dict name: shape} of an architecture's config, without building the network
_STATE_SHAPES = {"StudentLSTM": student.state_shapes, "ResNet": resnet.state_shapes}


def architecture_of(model):
    """(name, constructor kwargs) that rebuild ``model``'s shape."""
    for name, cls in ARCHITECTURES.items():
        if isinstance(model, cls):
            return name, dict(model.config)
    raise ModelFileError(f"unknown model class {type(model).__name__}")


def state_shapes_of(architecture, config):
    """{state_dict name: shape} of ``architecture`` built with ``config`` (already checked)."""
    return _STATE_SHAPES[architecture](**config)


__all__ = ["ARCHITECTURES", "architecture_of", "state_shapes_of"]
