"""Camera encoder: crop, small GroupNorm CNN, spatial-softmax keypoints (Levine et al. 2016).

Spatial softmax turns each feature map into the expected image coordinate of its activation, a
compact "where is it" feature that diffusion_policy and robomimic found to beat global pooling for
manipulation. GroupNorm instead of BatchNorm because BatchNorm's running statistics interact badly
with EMA weights and small batches (Chi et al. 2023, sec. 3.3).
"""

from __future__ import annotations

import torch
from torch import nn

from robot_rl.policies.config import VisionConfig


class SpatialSoftmax(nn.Module):
    """``(N, K, H, W)`` feature maps -> ``(N, 2K)`` expected ``(x, y)`` in ``[-1, 1]`` per map."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij"
        )
        self.register_buffer(
            "grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1), persistent=False
        )

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        n, k = maps.shape[:2]
        attention = torch.softmax(maps.flatten(2), dim=-1)  # (N, K, H*W)
        return (attention @ self.grid.to(attention.dtype)).reshape(n, 2 * k)


def random_crop(
    images: torch.Tensor, size: tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """An independent random ``size`` window of each image. ``(N, C, H, W) -> (N, C, h, w)``."""
    n, _, height, width = images.shape
    h, w = size
    top = torch.randint(0, height - h + 1, (n,), generator=generator).to(images.device)
    left = torch.randint(0, width - w + 1, (n,), generator=generator).to(images.device)
    rows = (top[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (N, h, 1)
    cols = (left[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (N, 1, w)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def center_crop(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central ``size`` window. ``(N, C, H, W) -> (N, C, h, w)``."""
    height, width = images.shape[-2:]
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    return images[..., top : top + size[0], left : left + size[1]]


class ImageEncoder(nn.Module):
    """One camera's frames ``(N, 3, H, W)`` uint8 -> features ``(N, cfg.features)``.

    Training mode crops at random (augmentation); eval mode crops the center, so both see the same
    field of view size.
    """

    def __init__(self, cfg: VisionConfig, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.image_size, self.crop = tuple(image_size), tuple(cfg.crop)
        layers: list[nn.Module] = []
        width = 3
        for i, channels in enumerate(cfg.channels):
            stride = 2 if i < 2 else 1
            layers += [
                nn.Conv2d(width, channels, 3, stride=stride, padding=1),
                nn.GroupNorm(cfg.groups, channels),
            ]
            layers += [nn.Mish()]
            width = channels
        layers.append(nn.Conv2d(width, cfg.keypoints, 1))
        self.backbone = nn.Sequential(*layers)
        with torch.no_grad():
            h, w = self.backbone(torch.zeros(1, 3, *self.crop)).shape[-2:]
        self.keypoints = SpatialSoftmax(h, w)
        self.out = nn.Linear(2 * cfg.keypoints, cfg.features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise ValueError(f"camera frames must be uint8, got {images.dtype}")
        if tuple(images.shape[1:]) != (3, *self.image_size):
            raise ValueError(
                f"camera frames must be (N, 3, {self.image_size[0]}, {self.image_size[1]}), "
                f"got {tuple(images.shape)}"
            )
        if self.crop != self.image_size:
            images = (
                random_crop(images, self.crop) if self.training else center_crop(images, self.crop)
            )
        x = images.to(self.out.weight.dtype) * (2.0 / 255.0) - 1.0
        return self.out(self.keypoints(self.backbone(x)))
