"""uavcrew's FastAPI service: ``uvicorn --app-dir src api.main:app``."""
