"""API shapes (pydantic), apart from the store's rows. The prediction routes write JSON directly for
speed; these models document them in OpenAPI and the tests validate responses against them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Box(BaseModel):
    x0: float
    y0: float
    x1: float
    y1: float


class PredictionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    box: Box | None = Field(None, description="Absolute pixels of the image as sent (EXIF orientation applied)")
    class_: str = Field(alias="class")
    class_id: int
    confidence: float | None = Field(None, description="Detections and classes (a semantic segment has none)")
    mask: dict[str, Any] | None = Field(None, description="Instance or semantic mask: COCO compressed RLE "
                                                          "{size: [height, width], counts}")
    pixels: int | None = Field(None, description="Semantic segmentation: the class's pixels")
    fraction: float | None = Field(None, description="Semantic segmentation: the class's share of the image")
    keypoints: list[list[float]] | None = Field(None, description="Landmarks [[x, y], ...] in the image's pixels "
                                                                  "(the face detector: eyes, nose, mouth corners)")
    text: str | None = Field(None, description="OCR: the text line read in this region")
    polygon: list[list[float]] | None = Field(None, description="OCR: the text region's 4 corners [[x, y], ...] in "
                                                                "the image's pixels, clockwise from top-left; `box` "
                                                                "is its axis-aligned bounding box")


class Size(BaseModel):
    width: int
    height: int


class ImageTimings(BaseModel):
    decode_ms: float
    queue_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float


class ImageOut(BaseModel):
    index: int
    name: str
    size: Size
    predictions: list[PredictionOut]
    batch_size: int = Field(description="Images in the inference batch this image ran in")
    tiles: int | None = Field(None, description="Tiles predicted (with `tile`)")
    timings: ImageTimings


class ModelRef(BaseModel):
    name: str = Field(description="The name in the URL: a model or a task family")
    version: int = Field(description="The registry id of the model that ran")
    model: str = Field(description="The registry name of the model that ran")
    stage: str
    task: str


class Timings(BaseModel):
    total_ms: float


class PredictOut(BaseModel):
    model: ModelRef
    images: list[ImageOut]
    timings: Timings


class ImageIn(BaseModel):
    base64: str | None = Field(None, description="The image file's bytes, base64 (a data: URL prefix is fine)")
    url: str | None = Field(None, description="http(s) URL on the server's allow-list (off by default)")
    name: str = ""


class PredictJSON(BaseModel):
    """The JSON request body (the multipart and raw-bytes forms take the same parameters as query fields)."""

    images: list[ImageIn]
    confidence: float | None = None
    iou: float | None = None
    classes: list[str] | None = None
    max_detections: int | None = None
    tile: str | None = None
    overlap: float | None = None


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confidence: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.6, ge=0, le=1)
    max_detections: int = Field(100, ge=1, le=1000)
    classes: list[str] | None = None
    tile: str | None = Field(None, max_length=16)
    overlap: float = Field(0.2, ge=0, lt=1)


class VersionOut(BaseModel):
    version: int
    model: str
    task: str
    arch: str
    stage: str
    dataset_version: str
    classes: list[str]
    input_size: list[int]
    metrics: dict[str, Any]
    created_at: str
    loaded: bool


class ModelOut(BaseModel):
    name: str
    kind: str = Field(description="model (a registry name) or family (a task: its ga model, else the newest)")
    task: str
    serving: int = Field(description="The version a request without /versions/{v} runs")
    versions: list[VersionOut]


class PromoteIn(BaseModel):
    stage: str | None = Field(None, description="preview | beta | ga; default: the next stage")


class ErrorOut(BaseModel):
    error: str
    message: str
    hint: str | None = None
    where: str | None = None


class CorrectionIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    class_: str = Field(alias="class", max_length=128)
    box: Box | None = Field(None, description="Absolute pixels; leave out for a whole-image label")


class FeedbackIn(BaseModel):
    """What the model should have said about one image."""

    model: str = Field(max_length=64, description="The name predicted with (a model or a task family)")
    version: int | None = Field(None, description="The version that answered (`model.version` of the response)")
    image: ImageIn | None = Field(None, description="The image (base64), unless it is in the project already")
    image_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    prediction: list[dict[str, Any]] = Field(default_factory=list, max_length=1000,
                                             description="The predictions being corrected, as returned")
    correction: list[CorrectionIn] = Field(max_length=1000, description="What is right (empty: nothing there)")
    note: str = Field("", max_length=2000)


class FeedbackOut(BaseModel):
    id: int
    model: str
    model_version: int | None
    image_sha256: str | None
    status: str


class TrackedPredictionOut(PredictionOut):
    track: int | None = Field(None, description="Track id (detectors); None: a detection no track took up")


class FrameOut(BaseModel):
    index: int = Field(description="The frame's index in the video")
    time_ms: float
    predictions: list[TrackedPredictionOut]


class TrackOut(BaseModel):
    track: int
    class_: str = Field(alias="class")
    first_ms: float
    last_ms: float
    duration_ms: float
    frames: int
    first_frame: int
    last_frame: int
    mean_score: float | None


class JobOut(BaseModel):
    id: str
    status: str = Field(description="queued | running | done | failed")
    model: str
    version: int
    every_ms: float
    fps: float
    duration_ms: float
    frames_done: int
    frames_expected: int | None
    error: str | None
    frames: list[FrameOut]
    tracks: list[TrackOut] = Field(default_factory=list, description="Per-track class, first/last time, frames")


class SearchIn(BaseModel):
    """POST /v1/search as JSON: exactly one of image_id, image (base64 bytes) and concept."""
    image_id: str | None = Field(None, description="A project image: its id or file name")
    image: str | None = Field(None, description="Image bytes, base64")
    concept: str | None = Field(None, description="A concept's name: images ranked by its score")
    k: int = Field(20, ge=1, le=1000)


class SearchHitOut(BaseModel):
    image_id: int
    file_name: str
    sha256: str
    score: float = Field(description="Cosine similarity, or the concept's score")


class SearchOut(BaseModel):
    query: dict[str, Any]
    embedder: str
    embedded: int = Field(description="Images embedded on the way (new since the last search)")
    hits: list[SearchHitOut]
