"""``specman migrate``: the SCAR → OCI migration, checked end to end.

``source`` (a directory or the running SCAR, read through ``crawl``) → push → the console (``consoleops``) →
specman (``endpoint``) → the parity proof (``parity``) → the switch, orchestrated by ``run``; ``preflight`` checks
everything before anything changes.
"""
