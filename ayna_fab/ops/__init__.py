"""Laptop: the operations (deploy, rollback, day-two work) and the runner that runs them on hosts."""
