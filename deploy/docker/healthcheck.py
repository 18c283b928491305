"""The container's HEALTHCHECK: GET /_specman/healthz of the local `specman serve` (or, when that path is 404,
/healthz: `specman console`), exit 0 or 1.

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
    for path in ("/_specman/healthz", "/healthz"):  # serve's reserved prefix; the console has no such prefix
        url = base + path
        try:
            with urllib.request.urlopen(url, timeout=4, context=context) as response:  # noqa: S310 - fixed scheme
                return 0 if response.status == 200 else 1
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                print(f"healthcheck: {url}: {exc}", file=sys.stderr)
                return 1
        except (OSError, ValueError) as exc:
            print(f"healthcheck: {url}: {exc}", file=sys.stderr)
            return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
