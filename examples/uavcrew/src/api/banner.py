"""The message of GET / (changed by ``failure_modes.py code-change``)."""

BANNER = "UAV crew roster"
