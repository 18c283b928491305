"""specman: sync product manifests from an OCI registry and serve them over HTTPS."""

__version__ = "0.1.0"
