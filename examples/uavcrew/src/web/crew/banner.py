"""The headline shown on the front page (changed by ``failure_modes.py code-change``)."""

BANNER = "UAV crew roster"
