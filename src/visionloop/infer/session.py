"""Opening an ONNX Runtime session: one place for thread settings, quiet logs and the one-line load error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionLoopError


def open_session(model: str | Path | bytes, *, providers: list[Any], threads: int | None = None, what: str,
                 hint: str, spin_us: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on a file or bytes; a file that does not load is one error line.

    `spin_us`: how long ONNX Runtime's intra-op threads spin for more work before they sleep (None: its
    default; 0: no spinning). A server does other work between runs (HTTP, JSON, decoding); threads that keep
    spinning after a run take a core from it (see `serve.settings.Settings.spin_us`)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if spin_us == 0:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif spin_us is not None:
        opts.add_session_config_entry("session.intra_op.spin_duration_us", str(int(spin_us)))
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                    providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for a bad file
        raise VisionLoopError(f"cannot load the ONNX {what}: {e}".splitlines()[0],
                              path=None if isinstance(model, bytes) else str(model), hint=hint) from None
