"""Capture-layer tests (a package, so its conftest does not clash with the top-level one)."""
