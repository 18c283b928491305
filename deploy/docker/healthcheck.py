"""The container's HEALTHCHECK: is the local `specman serve` ready (GET /_specman/readyz), exit 0 or 1.

Ready means what the kustomize base's readinessProbe means: a complete generation is published (at once after a
restart, from the volume's last view; after the first complete sync on a new volume). `specman console` has no
/_specman/ prefix (404): its /healthz is asked instead. SPECMAN_HEALTHCHECK_PATH overrides the path (e.g. /healthz for a
liveness-only check).

Python only (the image has no curl). It reads the same SPECMAN_* variables as the server: SPECMAN_LISTEN for the
port (default 8443), SPECMAN_NO_TLS for plain HTTP, and verifies the certificate against the CA specman generated
(SPECMAN_DATA_DIR/tls/ca.crt, default /var/lib/specman) as `localhost`, one of its default names. With
SPECMAN_TLS_CERT (an operator's certificate, which need not name localhost) the chain is not verified: this checks
that the server answers, not who it is.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

_FALSE = {"", "0", "false", "no", "off", "f", "n"}
_READY = "/_specman/readyz"  # serve's reserved prefix


def main() -> int:
    port = os.environ.get("SPECMAN_LISTEN", "0.0.0.0:8443").rpartition(":")[2] or "8443"
    plain = os.environ.get("SPECMAN_NO_TLS", "").strip().lower() not in _FALSE
    context: ssl.SSLContext | None = None
    if not plain:
        data_dir = os.environ.get("SPECMAN_DATA_DIR", "/var/lib/specman")
        ca = os.path.join(data_dir, "tls", "ca.crt")
        if os.environ.get("SPECMAN_TLS_CERT") or not os.path.exists(ca):
            context = ssl._create_unverified_context()  # noqa: S323 - a liveness check of the local process
        else:
            context = ssl.create_default_context(cafile=ca)
    base = f"{'http' if plain else 'https'}://localhost:{port}"
    path = os.environ.get("SPECMAN_HEALTHCHECK_PATH", _READY)
    status = _get(base + path, context)
    if status == 404 and path == _READY:  # `specman console`: liveness is its readiness
        status = _get(base + "/healthz", context)
    return 0 if status == 200 else 1


def _get(url: str, context: ssl.SSLContext | None) -> int | None:
    """The HTTP status of GET ``url`` (None, with the reason on stderr, when there is no answer)."""
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:  # noqa: S310 - fixed scheme
            return int(response.status)
    except urllib.error.HTTPError as exc:
        print(f"healthcheck: {url}: HTTP {exc.code}", file=sys.stderr)
        return exc.code
    except (OSError, ValueError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
