"""The prediction service: a FastAPI app on Redis, served by gunicorn with uvicorn workers."""
