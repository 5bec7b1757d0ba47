"""The model gallery: ready models that answer before anything is labelled, from weights inside registry
packages (no account, no internet), registered like trained models.

    from visionloop import gallery
    gallery.entries()                                   # what can be added, and whether its package is here
    info = gallery.add(store, "face-detector")          # registry row (stage ga), ONNX export, model card
    info = gallery.add_onnx(store, "model.onnx", task="detect", classes=[...], input=640)

After `add`, predict, serve, evaluate and the loop treat the model like any trained one.
"""

from visionloop.gallery.add import add, add_onnx
from visionloop.gallery.catalog import ENTRIES, Entry, entries

__all__ = ["ENTRIES", "Entry", "add", "add_onnx", "entries"]
