"""Signature discovery, formats, verification policy and signing."""
