"""Crew roster and service heartbeats."""
