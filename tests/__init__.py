"""Test suite for specman (real components: see tests/fixtures and tests/conftest.py)."""
