"""Models: parameter dicts with PyTorch state_dict names, initialisation, forward and backward."""

from qdaed.models.resnet import ResNet
from qdaed.models.student import StudentLSTM

__all__ = ["ResNet", "StudentLSTM"]
