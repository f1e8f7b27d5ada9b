"""Pytest fixtures for a real redis (filled in by its issue)."""
