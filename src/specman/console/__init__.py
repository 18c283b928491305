"""The console's system API (``specman console``): login, SCAR configuration, pack registries, internal jobs.

Owns its SQLite database and secret key in the data directory and the HTTP API operators and ``specman migrate``
talk to.  It builds on ``specman.oci`` (registry checks, TLS setup); ``specman.runtime`` runs it in granian.  It must
not touch the store, the sync loop or the file server.  Modules, one concept each:

* ``storage`` (interface) / ``sqlite`` + ``migrations`` (the SQLite implementation and its numbered schema);
* ``crypto`` (AES-GCM for secrets at rest), ``auth`` (argon2 passwords, session tokens, throttling, service token);
* ``bodies`` (bounded JSON bodies and typed fields), ``errors`` (``ApiError`` → ``{"code", "message"}``);
* ``registries`` (endpoint syntax, the real validate checks), ``cafile`` (checks PEM CA certificates);
* ``cloudtypes`` (the data files' layout and schema), ``jobs`` (coalescing background runs that ingest them);
* ``service`` (the operations), ``openapi`` (the hand-written OpenAPI document), ``app`` (Starlette routes);
* ``client`` (the other side: specman's own tools calling this API, e.g. ``serve --console``).
"""
