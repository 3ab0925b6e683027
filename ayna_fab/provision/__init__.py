"""Laptop: setting a host up for a project and checking it against the standard (fab setup, fab validate)."""
