"""Opening an ONNX Runtime session: one place for thread settings, quiet logs and the one-line load error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError


def open_session(model: str | Path | bytes, *, providers: list[Any], threads: int | None = None, what: str,
                 hint: str) -> Any:
    """An `onnxruntime.InferenceSession` on a file or bytes; a file that does not load is one error line."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                    providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for a bad file
        raise VisionLoopError(f"cannot load the ONNX {what}: {e}".splitlines()[0],
                              path=None if isinstance(model, bytes) else str(model), hint=hint) from None
