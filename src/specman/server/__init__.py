"""HTTP serving of the data directory (``specman serve``).

Owns request handling only: it reads what ``specman.store`` published (``load_current``) and never writes to
the data directory.  ``paths`` turns a request path into a file confined to a served tree.
"""

from specman.server.paths import PathRejected, RequestPath, confine, parse_request_path

__all__ = ["PathRejected", "RequestPath", "confine", "parse_request_path"]
