"""An image classifier on a timm backbone: single-label (softmax) or multi-label (independent sigmoids).

Input: float32 NCHW RGB on 0..255 (normalised inside, as the detector). The exported graph returns
probabilities: softmax over classes, or one sigmoid per class when `multi_label`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from visionloop.models.weights import WeightsSpec


class Classifier(nn.Module):
    def __init__(self, num_classes: int, *, arch: str = "efficientnet_lite0", multi_label: bool = False,
                 mean: tuple[float, ...] = (127.0, 127.0, 127.0), std: tuple[float, ...] = (128.0, 128.0, 128.0),
                 bn_eps: float | None = None, drop_rate: float = 0.2) -> None:
        super().__init__()
        import timm

        self.num_classes = num_classes
        self.multi_label = multi_label
        self.config: dict[str, Any] = {"num_classes": num_classes, "arch": arch, "multi_label": multi_label,
                                       "mean": list(mean), "std": list(std), "bn_eps": bn_eps,
                                       "drop_rate": drop_rate}
        self.net = timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
        if bn_eps is not None:
            for mod in self.net.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.eps = bn_eps
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def load_pretrained(self, weights: WeightsSpec) -> dict[str, int]:
        state = weights.state_dict()
        if state is None:
            return {"loaded": 0, "skipped": 0}
        own = self.net.state_dict()
        head = self.net.default_cfg.get("classifier", "classifier")
        kept = {k: v for k, v in state.items()
                if k in own and not k.startswith(head + ".") and tuple(v.shape) == tuple(own[k].shape)}
        missing = [k for k in own if k not in kept and not k.startswith(head + ".")
                   and not k.endswith("num_batches_tracked")]
        if missing:
            from visionloop.core.errors import VisionLoopError

            raise VisionLoopError(f"weights {weights.name} do not fit {self.config['arch']}: {len(missing)} tensors "
                                  f"missing (first: {missing[0]})", hint="pass weights of the same architecture")
        self.net.load_state_dict(kept, strict=False)
        return {"loaded": len(kept), "skipped": len(state) - len(kept)}

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C)."""
        return self.net((x - self.mean) / self.std)

    def loss(self, x: Tensor, targets: Tensor) -> Tensor:
        """targets: class indices (N,) for single-label, multi-hot (N, C) floats for multi-label."""
        logits = self(x)
        if self.multi_label:
            return nn.functional.binary_cross_entropy_with_logits(logits, targets.float())
        return nn.functional.cross_entropy(logits, targets)

    def probabilities(self, x: Tensor) -> Tensor:
        logits = self(x)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def export_module(self, width: int, height: int) -> nn.Module:
        return _Exported(self)


class _Exported(nn.Module):
    def __init__(self, clf: Classifier) -> None:
        super().__init__()
        self.clf = clf

    def forward(self, x: Tensor) -> Tensor:
        return self.clf.probabilities(x)
