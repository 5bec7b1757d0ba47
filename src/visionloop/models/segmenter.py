"""Semantic segmentation: torchvision's LR-ASPP head on a timm backbone (EfficientNet-Lite0 by default).

The head (Howard et al., "Searching for MobileNetV3") mixes the stride-32 features, gated by their
global average, with the stride-8 features; its logits are upsampled (bilinear) to the input size.
Outputs `num_classes + 1` channels: 0 is the background, k + 1 the version's class k. Ground-truth
pixels of crowd regions are `IGNORE` and count in neither the loss nor the metrics.

Input: float32 NCHW RGB on 0..255 (letterboxed), normalised inside as the detector. The exported
graph returns per-pixel probabilities (N, K + 1, H, W); the label map (argmax) and its mapping back
to the photo are numpy in `visionloop.infer`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.segmentation.lraspp import LRASPPHead

from visionloop.core.geometry import IGNORE
from visionloop.models.detector import _backbone, load_backbone
from visionloop.models.weights import WeightsSpec


class SemanticSegmenter(nn.Module):
    def __init__(self, num_classes: int, *, arch: str = "efficientnet_lite0", inter_channels: int = 128,
                 mean: tuple[float, ...] = (127.0, 127.0, 127.0), std: tuple[float, ...] = (128.0, 128.0, 128.0),
                 bn_eps: float | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.config: dict[str, Any] = {"num_classes": num_classes, "arch": arch, "inter_channels": inter_channels,
                                       "mean": list(mean), "std": list(std), "bn_eps": bn_eps}
        self.backbone = _backbone(arch, bn_eps)
        channels = self.backbone.feature_info.channels()
        self.head = LRASPPHead(channels[0], channels[-1], num_classes + 1, inter_channels)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def load_pretrained(self, weights: WeightsSpec) -> dict[str, int]:
        return load_backbone(self.backbone, weights)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, K + 1, H, W) at the input's size."""
        feats = self.backbone((x - self.mean) / self.std)
        out = self.head({"low": feats[0], "high": feats[-1]})
        return nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def loss(self, x: Tensor, targets: Tensor) -> Tensor:
        """targets: (N, H, W) int64 label maps (0 background, IGNORE not counted)."""
        return nn.functional.cross_entropy(self(x), targets, ignore_index=IGNORE)

    def probabilities(self, x: Tensor) -> Tensor:
        return torch.softmax(self(x), dim=1)

    def export_module(self, width: int, height: int) -> nn.Module:
        return _Exported(self)


class _Exported(nn.Module):
    def __init__(self, seg: SemanticSegmenter) -> None:
        super().__init__()
        self.seg = seg

    def forward(self, x: Tensor) -> Tensor:
        return self.seg.probabilities(x)
