"""The small-batch matrix-product convolutions compute exactly what torch's convolutions do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robot_rl.policies.unet1d import SMALL_BATCH, GemmConv1d, GemmConvTranspose1d


@pytest.mark.parametrize(
    "c_in, c_out, t, k, stride",
    [
        (7, 64, 16, 5, 1),
        (256, 256, 4, 5, 1),
        (32, 16, 8, 3, 1),
        (64, 64, 16, 3, 2),
        (8, 8, 7, 3, 2),
    ],
)
@pytest.mark.parametrize("batch", [1, SMALL_BATCH])
def test_gemm_conv_matches_conv1d_values_and_gradients(c_in, c_out, t, k, stride, batch):
    ref = nn.Conv1d(c_in, c_out, k, stride=stride, padding=k // 2)
    gemm = GemmConv1d(c_in, c_out, k, stride=stride, padding=k // 2)
    gemm.load_state_dict(ref.state_dict())
    x = torch.randn(batch, c_in, t, requires_grad=True)
    y_ref, y = ref(x), gemm(x)
    assert y.shape == y_ref.shape
    assert torch.allclose(y, y_ref, atol=1e-5)
    g = torch.randn_like(y)
    (dx_ref,) = torch.autograd.grad(y_ref, x, g)
    (dx,) = torch.autograd.grad(y, x, g)
    assert torch.allclose(dx, dx_ref, atol=1e-5)


@pytest.mark.parametrize("c, t", [(64, 8), (256, 4)])
def test_gemm_transposed_conv_matches_conv_transpose1d(c, t):
    ref = nn.ConvTranspose1d(c, c, 4, stride=2, padding=1)
    gemm = GemmConvTranspose1d(c, c, 4, stride=2, padding=1)
    gemm.load_state_dict(ref.state_dict())
    x = torch.randn(1, c, t)
    assert gemm(x).shape == (1, c, 2 * t)
    assert torch.allclose(gemm(x), ref(x), atol=1e-5)


def test_only_large_batches_take_torchs_convolution(monkeypatch):
    gemm = GemmConv1d(8, 8, 3, padding=1)
    calls = []
    native = nn.Conv1d._conv_forward
    monkeypatch.setattr(nn.Conv1d, "_conv_forward", lambda *a: calls.append(1) or native(*a))
    gemm(torch.randn(SMALL_BATCH, 8, 4))
    assert not calls
    gemm(torch.randn(SMALL_BATCH + 1, 8, 4))
    assert calls
