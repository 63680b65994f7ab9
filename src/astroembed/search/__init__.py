"""Vector search over embedding catalogues (faiss), within and across modalities."""

from .index import IndexFileError, SearchResult, VectorIndex
from .neighbours import neighbour_table, write_neighbour_table

__all__ = ["VectorIndex", "SearchResult", "IndexFileError", "neighbour_table", "write_neighbour_table"]
