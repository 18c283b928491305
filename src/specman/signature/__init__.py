"""Signed manifests: signature discovery, formats, verification policy and signing.

This package owns everything about signatures attached to manifests versions:

* discovery — which registry tags and manifests are signatures/attestations rather than versions (cosign
  ``sha256-<hex>.sig/.att/.sbom`` tags, OCI referrers fallback index tags, manifests with a ``subject``);
* formats — cosign's legacy simple-signing ``.sig`` tag, Sigstore bundles attached as OCI 1.1 referrers, and
  Notation JWS envelopes (``notation.py`` / ``notation_policy.py``);
* verification policy — ``off|audit|required`` scoped by tag glob, trusted keys, results cached by manifest digest;
* signing — writing cosign-compatible signatures with a local key.

It is a library package: it never imports the CLI or the terminal UI.
"""
