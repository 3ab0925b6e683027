#!/usr/bin/env python3
"""Django's command-line utility for uavcrew (run from anywhere)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    from config.environment import load_env

    load_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
