"""Laptop: the link to a host. SSH, running a Command (transport.py), the host protocol's laptop side."""
