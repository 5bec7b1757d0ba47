"""Where the web UI keeps its thumbnails: `<root>/cache/thumbs/<sha[:2]>/<sha>[-<regions>]` holds the sha256 of a
thumbnail blob (a JPEG in the blob store that no row refers to; `visionloop gc` may remove it, and it is made again).

    index = index_path(store, sha, regions="")   # regions: a digest of the blur regions drawn into it ('' = none)
    thumb_blobs = forget(store, sha)              # drop the blob's thumbnails from the index

One home for the layout: the web UI writes it, a bake (`blur_regions.write`) forgets the thumbnails of a blob
whose unblurred pixels were discarded.
"""

from __future__ import annotations

from pathlib import Path

from visionloop.store.project import Store


def index_path(store: Store, sha256: str, regions: str = "") -> Path:
    return Path(store.root) / "cache" / "thumbs" / sha256[:2] / (sha256 + (f"-{regions}" if regions else ""))


def forget(store: Store, sha256: str) -> list[str]:
    """Remove the index files of every cached thumbnail of `sha256`; the thumbnail blobs they named (the caller
    removes those no row refers to)."""
    folder = index_path(store, sha256).parent
    out: list[str] = []
    if not folder.is_dir():
        return out
    for index in folder.glob(f"{sha256}*"):
        try:
            thumb = index.read_text().strip()
        except OSError:
            thumb = ""
        if len(thumb) == 64:
            out.append(thumb)
        index.unlink(missing_ok=True)
    return out
