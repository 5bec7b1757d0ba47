"""The project store: SQL metadata + content-addressed blobs + lineage."""

from visionloop.store.project import Stats, Store

__all__ = ["Stats", "Store"]
