"""Model architectures and pretrained weights (torch; imported by `train`, never by `infer`).

    from visionloop.models import ARCHS, build
    model = build("fcos_lite0", num_classes=3, weights=resolve("efficientnet_lite0.imagenet"))

Architectures: `fcos_lite0` (detect: FCOS + FPN P3–P7 on EfficientNet-Lite0), `fcos_seg_lite0`
(segment: the same detector plus YOLACT-style prototype masks), `lraspp_lite0` (semantic: LR-ASPP),
`cls_lite0` (classify: single- or multi-label).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionloop.core.errors import VisionLoopError
from visionloop.models.weights import DEFAULT, Weights, WeightsInfo, WeightsSpec, resolve


@dataclass(frozen=True)
class ArchInfo:
    name: str
    task: str  # detect | segment | semantic | classify
    imgsz: int  # default square input side
    resize: str  # fit (letterbox) | stretch
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "imgsz": self.imgsz, "resize": self.resize,
                "description": self.description}


ARCHS: dict[str, ArchInfo] = {
    "fcos_lite0": ArchInfo("fcos_lite0", "detect", 320, "fit",
                           "anchor-free FCOS + FPN (P3-P7, strides 8-128) on EfficientNet-Lite0"),
    "fcos_seg_lite0": ArchInfo("fcos_seg_lite0", "segment", 320, "fit",
                               "fcos_lite0 plus 16 prototype masks at stride 4 mixed per detection (YOLACT-style)"),
    "lraspp_lite0": ArchInfo("lraspp_lite0", "semantic", 320, "fit",
                             "LR-ASPP semantic segmentation head (strides 8 + 32) on EfficientNet-Lite0"),
    "cls_lite0": ArchInfo("cls_lite0", "classify", 224, "stretch",
                          "EfficientNet-Lite0 classifier (softmax, or sigmoid per class for multi-label)"),
}
DEFAULT_ARCH = {"detect": "fcos_lite0", "segment": "fcos_seg_lite0", "semantic": "lraspp_lite0",
                "classify": "cls_lite0"}
TASKS = ("detect", "segment", "semantic", "classify")


def arch_for(task: str, name: str | None = None) -> ArchInfo:
    if task not in TASKS:
        raise VisionLoopError(f"unknown task {task!r}", hint=f"tasks: {', '.join(TASKS)}")
    name = name or DEFAULT_ARCH[task]
    if name not in ARCHS:
        raise VisionLoopError(f"unknown model {name!r}", hint=f"models: {', '.join(ARCHS)}")
    info = ARCHS[name]
    if info.task != task:
        raise VisionLoopError(f"model {name} is for {info.task}, not {task}",
                              hint=f"use --model {DEFAULT_ARCH[task]}")
    return info


def build(arch: str, config: dict[str, Any]) -> Any:
    """The torch module of `arch` from its config (as stored in the model row; no weights loaded)."""
    cfg = dict(config)
    cfg.pop("arch_name", None)
    if arch == "fcos_lite0":
        from visionloop.models.detector import FCOSDetector

        return FCOSDetector(**cfg)
    if arch == "fcos_seg_lite0":
        from visionloop.models.instance import FCOSMaskDetector

        return FCOSMaskDetector(**cfg)
    if arch == "lraspp_lite0":
        from visionloop.models.segmenter import SemanticSegmenter

        return SemanticSegmenter(**cfg)
    if arch == "cls_lite0":
        from visionloop.models.classifier import Classifier

        return Classifier(**cfg)
    raise VisionLoopError(f"unknown model {arch!r}", hint=f"models: {', '.join(ARCHS)}")


def create(arch: str, num_classes: int, weights: WeightsSpec, *, multi_label: bool = False,
           **options: Any) -> Any:
    """A fresh module with pretrained backbone weights loaded (`weights` random: none)."""
    w = weights.info
    if arch == "fcos_lite0":
        from visionloop.models.detector import FCOSDetector, load_backbone

        det = FCOSDetector(num_classes, arch=w.arch, mean=w.mean, std=w.std, bn_eps=w.bn_eps, **options)
        load_backbone(det.backbone, weights)
        return det
    if arch == "fcos_seg_lite0":
        from visionloop.models.detector import load_backbone
        from visionloop.models.instance import FCOSMaskDetector

        seg = FCOSMaskDetector(num_classes, arch=w.arch, mean=w.mean, std=w.std, bn_eps=w.bn_eps, **options)
        load_backbone(seg.backbone, weights)
        return seg
    if arch == "lraspp_lite0":
        from visionloop.models.segmenter import SemanticSegmenter

        sem = SemanticSegmenter(num_classes, arch=w.arch, mean=w.mean, std=w.std, bn_eps=w.bn_eps, **options)
        sem.load_pretrained(weights)
        return sem
    if arch == "cls_lite0":
        from visionloop.models.classifier import Classifier

        clf = Classifier(num_classes, arch=w.arch, multi_label=multi_label, mean=w.mean, std=w.std,
                         bn_eps=w.bn_eps, **options)
        clf.load_pretrained(weights)
        return clf
    raise VisionLoopError(f"unknown model {arch!r}", hint=f"models: {', '.join(ARCHS)}")


__all__ = ["ARCHS", "DEFAULT", "DEFAULT_ARCH", "ArchInfo", "TASKS", "Weights", "WeightsInfo", "WeightsSpec",
           "arch_for", "build", "create", "resolve"]
