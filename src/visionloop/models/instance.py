"""Instance segmentation: the FCOS detector plus prototype masks (YOLACT's idea, as in YOLOv8-seg).

A small proto-net on P3 (stride 8, upsampled ×2 to stride 4) makes `num_protos` prototype masks
per image; a 3×3 conv on every FPN level predicts, at each grid point, the coefficients that mix
them. A detection's mask is sigmoid(coefficients · prototypes), cropped to its box. The loss adds,
for the points FCOS assigned to an object, the per-pixel BCE against that object's mask at stride
4, inside its box, averaged per object (as YOLACT). The box branch is exactly `fcos_lite0`'s.

The exported graph returns boxes (N, A, 4), scores (N, A, C), coefficients (N, A, P) and
prototypes (N, P, H/4, W/4); NMS, mask assembly and the mapping back to the photo are numpy in
`visionloop.infer.masks`, shared by training's validation and inference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from visionloop.models.detector import FCOSDetector

PROTO_STRIDE = 4
MAX_MASKS = 64  # per image and step: the assigned points whose masks enter the loss (a random subset)


class FCOSMaskDetector(FCOSDetector):
    def __init__(self, num_classes: int, *, num_protos: int = 16, mask_weight: float = 1.0, **kw: Any) -> None:
        super().__init__(num_classes, **kw)
        c = self.config["fpn_channels"]
        self.config.update(num_protos=num_protos, mask_weight=mask_weight)
        self.mask_weight = mask_weight
        self.protonet = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, num_protos, 1))
        self.coefs = nn.Conv2d(c, num_protos, 3, padding=1)

    def forward(self, x: Tensor) -> tuple[dict[str, Tensor], list[tuple[int, int]]]:
        feats = self.features(x)
        head = self.head(feats)
        n = x.shape[0]
        head["coefs"] = torch.cat([self.coefs(f).permute(0, 2, 3, 1).reshape(n, -1, self.coefs.out_channels)
                                   for f in feats], dim=1)
        head["protos"] = self.protonet(feats[0])
        return head, [(int(f.shape[-2]), int(f.shape[-1])) for f in feats]

    def loss(self, x: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        head, shapes = self(x)
        anchors = self.anchors(shapes, x.device)
        per_level = [h * w for h, w in shapes]
        matched = [self._match(anchors, t["boxes"], per_level) for t in targets]
        losses = self.head.compute_loss(targets, head, [anchors] * len(targets), matched)
        losses["mask"] = self.mask_weight * self._mask_loss(head["coefs"], head["protos"], targets, matched)
        return dict(losses)

    def _mask_loss(self, coefs: Tensor, protos: Tensor, targets: list[dict[str, Tensor]],
                   matched: list[Tensor]) -> Tensor:
        _, p, hp, wp = protos.shape
        ys = (torch.arange(hp, device=protos.device, dtype=torch.float32) + 0.5) * PROTO_STRIDE
        xs = (torch.arange(wp, device=protos.device, dtype=torch.float32) + 0.5) * PROTO_STRIDE
        total, count = protos.sum() * 0.0, 0
        for i, (t, m) in enumerate(zip(targets, matched, strict=True)):
            pos = torch.nonzero(m >= 0).squeeze(1)
            if pos.numel() == 0 or "masks" not in t:
                continue
            if pos.numel() > MAX_MASKS:
                pos = pos[torch.randperm(pos.numel(), device=pos.device)[:MAX_MASKS]]
            obj = m[pos]
            gt = nn.functional.interpolate(t["masks"][None].float(), size=(hp, wp), mode="area")[0][obj]
            logits = (coefs[i, pos] @ protos[i].reshape(p, -1)).reshape(-1, hp, wp)
            bce = nn.functional.binary_cross_entropy_with_logits(logits, gt, reduction="none")
            b = t["boxes"][obj]
            inside = ((xs[None, None, :] >= b[:, 0, None, None]) & (xs[None, None, :] <= b[:, 2, None, None])
                      & (ys[None, :, None] >= b[:, 1, None, None]) & (ys[None, :, None] <= b[:, 3, None, None]))
            inside = inside.float()
            total = total + ((bce * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1.0)).mean()
            count += 1
        return total / max(count, 1)

    def predict_raw(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # type: ignore[override]
        head, shapes = self(x)
        boxes, scores = self.decode(head, self.anchors(shapes, x.device))
        return boxes, scores, head["coefs"], head["protos"]

    def export_module(self, width: int, height: int) -> nn.Module:
        return _Exported(self, width, height)


class _Exported(nn.Module):
    def __init__(self, det: FCOSMaskDetector, width: int, height: int) -> None:
        super().__init__()
        self.det = det
        with torch.no_grad():
            _, shapes = det(torch.zeros(1, 3, height, width, device=next(det.parameters()).device))
        self.register_buffer("anchors", det.anchors(shapes, next(det.parameters()).device), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        head, _ = self.det(x)
        boxes, scores = self.det.decode(head, self.anchors)
        return boxes, scores, head["coefs"], head["protos"]
