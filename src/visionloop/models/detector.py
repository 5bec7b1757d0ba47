"""An anchor-free FCOS detector with an FPN on a timm backbone (EfficientNet-Lite0 by default).

Levels P3–P7 (strides 8, 16, 32, 64, 128): P3 at stride 8 gives a 640 px image an 80×80 grid,
so objects of 10–20 px get their own points (FCOS centre sampling, radius 1.5 strides); P6/P7
keep large objects. The head is torchvision's FCOSHead (focal loss, GIoU, centre-ness) with a
lighter tower; the matching is FCOS's (centre sampling, per-level size ranges).

Input: float32 NCHW RGB pixels on 0..255 (letterboxed); normalisation happens inside, so an
exported graph takes the same pixels. `export_module()` gives the graph to export: boxes decoded
in letterbox pixels (N, A, 4) and per-class scores sqrt(sigmoid(cls) · sigmoid(centre-ness))
(N, A, C); thresholding and NMS stay outside (numpy, in `visionloop.infer`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.fcos import FCOSClassificationHead, FCOSHead, FCOSRegressionHead
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from visionloop.models.weights import WeightsSpec

STRIDES = (8, 16, 32, 64, 128)


def _backbone(arch: str, bn_eps: float | None, freeze_bn: bool = False) -> nn.Module:
    """A timm features-only backbone; with `freeze_bn`, its batch norms become fixed affine maps
    (timm's `freeze_batch_norm_2d`, as torchvision's and detectron2's detectors fine-tune a pretrained
    backbone): statistics of 8-image batches no longer overwrite the pretrained ones."""
    import timm

    m = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(2, 3, 4))
    if bn_eps is not None:
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.eps = bn_eps
    if freeze_bn:
        from timm.layers import freeze_batch_norm_2d

        m = freeze_batch_norm_2d(m)
    return m


def load_backbone(backbone: nn.Module, weights: WeightsSpec) -> dict[str, int]:
    """Load pretrained weights into a (features-only) backbone; counts of loaded and skipped tensors."""
    state = weights.state_dict()
    if state is None:
        return {"loaded": 0, "skipped": 0}
    own = backbone.state_dict()
    kept = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    missing = [k for k in own if k not in kept and not k.endswith("num_batches_tracked")]
    if missing:
        from visionloop.core.errors import VisionLoopError

        raise VisionLoopError(f"weights {weights.name} do not fit the backbone: {len(missing)} tensors missing "
                              f"(first: {missing[0]})", hint="pass weights of the same architecture")
    backbone.load_state_dict(kept, strict=False)
    return {"loaded": len(kept), "skipped": len(state) - len(kept)}


class FCOSDetector(nn.Module):
    def __init__(self, num_classes: int, *, arch: str = "efficientnet_lite0", fpn_channels: int = 64,
                 head_convs: int = 2, mean: tuple[float, ...] = (127.0, 127.0, 127.0),
                 std: tuple[float, ...] = (128.0, 128.0, 128.0), bn_eps: float | None = None,
                 center_sampling_radius: float = 1.5, freeze_bn: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.config: dict[str, Any] = {"num_classes": num_classes, "arch": arch, "fpn_channels": fpn_channels,
                                       "head_convs": head_convs, "mean": list(mean), "std": list(std),
                                       "bn_eps": bn_eps, "center_sampling_radius": center_sampling_radius,
                                       "freeze_bn": freeze_bn}
        self.backbone = _backbone(arch, bn_eps, freeze_bn)
        channels = self.backbone.feature_info.channels()
        self.fpn = FeaturePyramidNetwork(channels, fpn_channels, extra_blocks=LastLevelP6P7(fpn_channels,
                                                                                              fpn_channels))
        self.head = FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs)
        groups = min(32, fpn_channels // 4)

        def norm(c: int) -> nn.Module:
            return nn.GroupNorm(groups, c)

        self.head.classification_head = FCOSClassificationHead(fpn_channels, 1, num_classes, head_convs,
                                                               norm_layer=norm)
        self.head.regression_head = FCOSRegressionHead(fpn_channels, 1, head_convs, norm_layer=norm)
        self.center_sampling_radius = center_sampling_radius
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    # -- forward ------------------------------------------------------------------------------
    def features(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        feats = self.backbone(x)
        pyramid = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        return list(pyramid.values())

    def forward(self, x: Tensor) -> tuple[dict[str, Tensor], list[tuple[int, int]]]:
        feats = self.features(x)
        return self.head(feats), [(int(f.shape[-2]), int(f.shape[-1])) for f in feats]

    @staticmethod
    def anchors(shapes: list[tuple[int, int]], device: torch.device | str = "cpu") -> Tensor:
        """One square 'anchor' per grid point and level (centre, side = stride), (A, 4) xyxy."""
        out = []
        for (h, w), s in zip(shapes, STRIDES, strict=False):
            ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                    torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
            cx, cy = (xs.reshape(-1) + 0.5) * s, (ys.reshape(-1) + 0.5) * s
            out.append(torch.stack([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2], dim=1))
        return torch.cat(out)

    # -- training -----------------------------------------------------------------------------
    def loss(self, x: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        head, shapes = self(x)
        anchors = self.anchors(shapes, x.device)
        per_level = [h * w for h, w in shapes]
        matched = [self._match(anchors, t["boxes"], per_level) for t in targets]
        return self.head.compute_loss(targets, head, [anchors] * len(targets), matched)

    def _match(self, anchors: Tensor, gt_boxes: Tensor, per_level: list[int]) -> Tensor:
        """FCOS assignment (as torchvision's): centre sampling, inside the box, per-level size range."""
        if gt_boxes.numel() == 0:
            return torch.full((anchors.size(0),), -1, dtype=torch.int64, device=anchors.device)
        gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        centers = (anchors[:, :2] + anchors[:, 2:]) / 2
        sizes = anchors[:, 2] - anchors[:, 0]
        match = (centers[:, None, :] - gt_centers[None]).abs_().max(dim=2).values \
            < self.center_sampling_radius * sizes[:, None]
        x, y = centers.unsqueeze(dim=2).unbind(dim=1)
        x0, y0, x1, y1 = gt_boxes.unsqueeze(dim=0).unbind(dim=2)
        dist = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)
        match &= dist.min(dim=2).values > 0
        lower = sizes * 4
        lower[: per_level[0]] = 0
        upper = sizes * 8
        upper[-per_level[-1]:] = float("inf")
        far = dist.max(dim=2).values
        match &= (far > lower[:, None]) & (far < upper[:, None])
        areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        weighted = match.to(torch.float32) * (1e8 - areas[None, :])
        best, idx = weighted.max(dim=1)
        idx[best < 1e-5] = -1
        return idx

    # -- inference ----------------------------------------------------------------------------
    def decode(self, head: dict[str, Tensor], anchors: Tensor) -> tuple[Tensor, Tensor]:
        boxes = self.head.box_coder.decode(head["bbox_regression"], anchors.unsqueeze(0).expand(
            head["bbox_regression"].shape[0], -1, -1))
        scores = torch.sqrt(torch.sigmoid(head["cls_logits"]) * torch.sigmoid(head["bbox_ctrness"]))
        return boxes, scores

    def predict_raw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        head, shapes = self(x)
        return self.decode(head, self.anchors(shapes, x.device))

    def export_module(self, width: int, height: int) -> nn.Module:
        return _Exported(self, width, height)


class _Exported(nn.Module):
    """The graph that goes to ONNX: pixels → (boxes, scores) with the anchors of one input size baked in."""

    def __init__(self, det: FCOSDetector, width: int, height: int) -> None:
        super().__init__()
        self.det = det
        with torch.no_grad():
            _, shapes = det(torch.zeros(1, 3, height, width, device=next(det.parameters()).device))
        self.register_buffer("anchors", det.anchors(shapes, next(det.parameters()).device), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        head, _ = self.det(x)
        return self.det.decode(head, self.anchors)
