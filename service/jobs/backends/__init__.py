"""How an accepted async prediction gets computed (ASYNC_BACKEND): `stream`, the durable Redis
stream that consumers work through, or `background`, FastAPI BackgroundTasks in the process
that answered (not durable; kept to compare against)."""
