"""Pytest fixtures for a real kafka (filled in by its issue)."""
