"""Fabric task collections, one module per area; fabfile.py only assembles them."""
