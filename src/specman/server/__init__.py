"""HTTP serving of the data directory (``specman serve``).

Owns request handling only: it reads what ``specman.store`` published (``StoreReader``) and never writes to
the data directory.  ``paths`` turns a request path into a file confined to a served tree; ``conditional``
answers preconditions (ETag, dates) and byte ranges.
"""

from specman.server.conditional import RangeNotSatisfiable, not_modified, parse_range, range_applies
from specman.server.paths import PathRejected, RequestPath, confine, parse_request_path

__all__ = [
    "PathRejected",
    "RangeNotSatisfiable",
    "RequestPath",
    "confine",
    "not_modified",
    "parse_range",
    "parse_request_path",
    "range_applies",
]
