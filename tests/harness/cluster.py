"""Pytest fixtures for a real cluster (filled in by its issue)."""
