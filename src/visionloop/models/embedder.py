"""Image embeddings: a frozen ImageNet backbone's global-average-pooled features, L2-normalised (torch).

    emb = Embedder.create()                      # the offline EfficientNet-Lite0 (ImageNet), eval mode
    vecs = emb.embed(batch)                       # (N, 3, 224, 224) float32 RGB on 0..255 → (N, 1280), unit norm
    data = export_embedder(emb)                   # ONNX bytes for `visionloop.infer.embed.OnnxEmbedder`

The exported graph takes the same pixels (float32 NCHW RGB on 0..255, stretched to `imgsz`) and
returns the unit-norm embeddings; its metadata names the embedder (`visionloop.embedder`) and its
preprocessing (`visionloop.preprocessing`), so prediction needs neither torch nor this module.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from visionloop.models.weights import WeightsSpec, resolve

EMBED_SIZE = 224


class Embedder(nn.Module):
    def __init__(self, *, arch: str = "efficientnet_lite0", mean: tuple[float, ...] = (127.0, 127.0, 127.0),
                 std: tuple[float, ...] = (128.0, 128.0, 128.0), bn_eps: float | None = None,
                 name: str = "") -> None:
        super().__init__()
        import timm

        self.name = name or arch
        self.net = timm.create_model(arch, pretrained=False, num_classes=0)  # global average pool, no head
        if bn_eps is not None:
            for mod in self.net.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.eps = bn_eps
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.dim = int(self.net.num_features)

    @classmethod
    def create(cls, weights: WeightsSpec | str | None = None) -> Embedder:
        """The frozen embedder with pretrained weights (default: the offline ImageNet Lite0), in eval mode."""
        spec = weights if isinstance(weights, WeightsSpec) else resolve(weights)
        w = spec.info
        emb = cls(arch=w.arch, mean=w.mean, std=w.std, bn_eps=w.bn_eps, name=spec.name)
        state = spec.state_dict()
        if state is not None:
            own = emb.net.state_dict()
            kept = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
            missing = [k for k in own if k not in kept and not k.endswith("num_batches_tracked")]
            if missing:
                from visionloop.core.errors import VisionLoopError

                raise VisionLoopError(f"weights {spec.name} do not fit {w.arch}: {len(missing)} tensors missing "
                                      f"(first: {missing[0]})", hint="pass weights of the same architecture")
            emb.net.load_state_dict(kept, strict=False)
        emb.eval()
        for p in emb.parameters():
            p.requires_grad_(False)
        return emb

    def forward(self, x: Tensor) -> Tensor:
        feats = self.net((x - self.mean) / self.std)
        return nn.functional.normalize(feats, dim=1)

    @torch.no_grad()
    def embed(self, x: Tensor, *, batch: int = 32) -> Tensor:
        return torch.cat([self(x[i:i + batch]) for i in range(0, x.shape[0], batch)]) if len(x) else \
            torch.zeros(0, self.dim)


def export_embedder(emb: Embedder, *, imgsz: int = EMBED_SIZE) -> bytes:
    """The embedder as ONNX (dynamic batch), with its name and preprocessing in the metadata."""
    import onnx

    buf = io.BytesIO()
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(emb, (dummy,), buf, input_names=["images"], output_names=["embeddings"],
                          dynamic_axes={"images": {0: "n"}, "embeddings": {0: "n"}}, opset_version=17,
                          dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    meta: dict[str, Any] = {
        "visionloop.embedder": emb.name,
        "visionloop.task": "embed",
        "visionloop.preprocessing": json.dumps({"width": imgsz, "height": imgsz, "resize": "stretch",
                                                "pixels": "rgb 0..255 float32 NCHW", "normalised": "inside"}),
        "visionloop.dim": str(emb.dim),
    }
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    return model.SerializeToString()
