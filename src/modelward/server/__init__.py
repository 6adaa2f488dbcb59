"""The modelward server: the curated model hub (and later the fleet console) over FastAPI."""
