"""HF checkpoint -> GGUF export (the demo parent as llama.cpp sees it)."""

from coe.export.gguf_export import OUT_TYPES, ExportResult, export_gguf

__all__ = ["OUT_TYPES", "ExportResult", "export_gguf"]
