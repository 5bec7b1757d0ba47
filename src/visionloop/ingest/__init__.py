"""Getting data in and out: import into the project, export from it, convert without one."""

from visionloop.formats.convert import convert
from visionloop.ingest.batches import BatchInfo, UndoReport, list_batches, show_batch, undo_batch
from visionloop.ingest.exporter import export_dataset
from visionloop.ingest.importer import ImportReport, import_dataset, import_samples

__all__ = ["BatchInfo", "ImportReport", "UndoReport", "convert", "export_dataset", "import_dataset", "import_samples",
           "list_batches",
           "show_batch", "undo_batch"]
