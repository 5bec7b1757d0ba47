"""Getting data in and out: import into the project, export from it, convert without one."""

from visionloop.formats.convert import convert
from visionloop.ingest.exporter import export_dataset
from visionloop.ingest.importer import ImportReport, import_dataset

__all__ = ["ImportReport", "convert", "export_dataset", "import_dataset"]
