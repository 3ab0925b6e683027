"""Laptop: what fab init reads from an existing project, and the hosts.toml entry it proposes."""
