"""`device` reaches ONNX Runtime: cpu (the default) is CPU only; cuda[:N] puts TensorRT / CUDA on GPU N
(`device_id`), CPU as the fallback. No GPU here: onnxruntime is made to look like onnxruntime-gpu, each session
opened is recorded and then opened on CPU so the predictor still predicts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from visionloop.core.errors import VisionLoopError
from visionloop.infer import Predictor, choose_providers
from visionloop.infer import predictor as infer_predictor


@pytest.fixture
def recorded(monkeypatch) -> list[list]:
    """The providers each InferenceSession is asked for (as onnxruntime receives them)."""
    asked: list[list] = []
    real = ort.InferenceSession

    def session(model, sess_options=None, providers=None, **kw):
        asked.append(list(providers))
        return real(model, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", session)
    return asked


def _square() -> np.ndarray:
    img = np.zeros((64, 64, 3), np.uint8)
    img[20:32, 24:36] = 255  # a 12 px white square at (24, 20): the detector's exact box
    return img


def test_cpu_is_the_default_and_no_gpu_provider_is_refused(squares_onnx, recorded):
    p = Predictor(squares_onnx)
    assert recorded == [["CPUExecutionProvider"]] and p.providers == ["CPUExecutionProvider"]
    assert choose_providers() == ["CPUExecutionProvider"]
    # this machine's onnxruntime has no GPU provider: cuda is refused at once, not run on CPU
    with pytest.raises(VisionLoopError, match="no CUDA/TensorRT execution provider"):
        Predictor(squares_onnx, device="cuda:1")
    with pytest.raises(VisionLoopError, match="unknown device 'cuda:x'"):
        choose_providers("cuda:x")
    with pytest.raises(VisionLoopError, match="unknown device 'gpu'"):
        choose_providers("gpu")


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("cuda:0", 0), ("cuda:1", 1), ("cuda:3", 3)])
def test_cuda_index_reaches_every_gpu_provider(squares_onnx, recorded, monkeypatch, device, index):
    monkeypatch.setattr(infer_predictor, "available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    p = Predictor(squares_onnx, device=device)
    assert recorded == [[("TensorrtExecutionProvider", {"device_id": index}),
                         ("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]]
    pred = p.predict(_square(), conf=0.9)
    np.testing.assert_allclose(pred.boxes, [[24, 20, 36, 32]], atol=1e-4)


def test_cuda_only_onnxruntime(squares_onnx, recorded, monkeypatch):
    monkeypatch.setattr(infer_predictor, "available_providers", lambda: ["CUDAExecutionProvider",
                                                                         "CPUExecutionProvider"])
    Predictor(squares_onnx, device="cuda:2")
    assert recorded == [[("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]]


def test_served_models_get_the_servers_device(squares_onnx, recorded, monkeypatch, tmp_path):
    """`visionloop serve --device cuda:1`: the server's model pool opens each graph on GPU 1."""
    import asyncio

    from visionloop.serve import Settings
    from visionloop.serve.engine import Pool
    from visionloop.serve.metrics import Metrics

    monkeypatch.setattr(infer_predictor, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    (tmp_path / "m.onnx").write_bytes(squares_onnx)
    pool = Pool(Settings(device="cuda:1", url_allow_list=[]), Metrics())

    async def load():
        loaded = await pool.get("m", lambda: str(tmp_path / "m.onnx"), ("m", "1"))
        await pool.close()
        return loaded

    loaded = asyncio.run(load())
    assert recorded == [[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]]
    assert loaded.predictor.classes == ["square"]
