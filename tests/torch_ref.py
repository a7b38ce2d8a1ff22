"""PyTorch, for conformance tests only. Importing this module skips the test module when torch
is absent; CI installs torch (CPU build), so there these tests run."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def to_torch(x, requires_grad=False):
    t = torch.from_numpy(x.copy())
    t.requires_grad_(requires_grad)
    return t


def to_numpy(t):
    return t.detach().cpu().numpy()
