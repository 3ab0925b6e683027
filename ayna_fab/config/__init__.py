"""Laptop: hosts.toml loaded and validated once (model.py), the port registry, -H targets, remote paths."""
