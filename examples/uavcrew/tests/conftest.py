import sys
from pathlib import Path

# The Django project root (src/web) is not installed (package = false); put it
# on sys.path the way gunicorn's --chdir does on servers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "web"))
