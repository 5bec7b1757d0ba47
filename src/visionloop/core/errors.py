"""One error hierarchy for everything a user can get wrong.

Every error says what was wrong, where (file, line or element), and what to do.
The CLI turns a `VisionLoopError` into one red line and an exit code; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class VisionLoopError(Exception):
    """Base of every user-facing error."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        location = ""
        if self.path is not None:
            location = self.path + (f" ({self.where})" if self.where else "") + ": "
        elif self.where:
            location = f"{self.where}: "
        text = location + self.message
        if self.hint:
            text += f" — {self.hint}"
        return text

    def to_json(self) -> dict[str, str | None]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "path": self.path,
            "where": self.where,
            "hint": self.hint,
        }


class FormatError(VisionLoopError):
    """An annotation file is malformed or says something impossible."""


class ImageError(VisionLoopError):
    """An image file is missing, not an image, truncated or of the wrong size."""


class ProjectError(VisionLoopError):
    """The project folder is missing, not a project, or of another schema version."""


class NotFoundError(VisionLoopError):
    """A named thing (format, version, model, class) does not exist."""


class LossError(VisionLoopError):
    """A write would lose data and the caller asked for strict behaviour."""
