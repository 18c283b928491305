"""What specman's web pages share: Jinja2 templates, the stylesheet and scripts, and the security headers.

Two applications render pages: the console (``specman.console.pages``: login, Pack Registries, SCAR, Jobs) and
``specman serve`` (``specman.server.status_page``: ``/_specman/``).  Pages are rendered on the server from the same
data the JSON APIs answer; the console's few interactive parts are small hand-written scripts in ``static/`` that
call the system API (``/v1/...``), so there is one code path for every change.  Nothing is loaded from elsewhere
(no CDN, no web font): ``static/`` is served by specman itself, and no node toolchain is involved.

* ``render`` renders a template with autoescaping on (every value a user typed is escaped);
* ``SecurityHeaders`` adds a Content-Security-Policy without inline scripts or styles (``script-src 'self'``),
  ``frame-ancestors 'none'``, ``nosniff`` and a same-origin referrer policy to every response;
* ``STATIC_DIR`` is the directory of the stylesheet and scripts (each app mounts it).
"""

from __future__ import annotations

from specman.webui.headers import CSP, HEADERS, SecurityHeaders
from specman.webui.templates import STATIC_DIR, render

__all__ = ["CSP", "HEADERS", "STATIC_DIR", "SecurityHeaders", "render"]
