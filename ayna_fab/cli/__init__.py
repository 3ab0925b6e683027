"""Laptop: the program's glue. Exit codes (exitcodes.py), the executor, output, and the tasks (tasks/).

The layers are described in docs/ARCHITECTURE.md."""
