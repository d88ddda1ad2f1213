"""The three builds measured side by side: their names, the order every table and chart shows
them in, and what each one is."""

from typing import Literal

BuildName = Literal["tuned", "seed", "bound"]
ORDER: tuple[BuildName, ...] = ("tuned", "seed", "bound")
# The builds the tuned one is measured against.
Reference = Literal["seed", "bound"]
REFERENCES: tuple[Reference, ...] = ("seed", "bound")
TITLES: dict[BuildName, str] = {
    "tuned": "this service under gunicorn (`python -m service serve`, as `make run`)",
    "seed": "FastAPI, sync redis-py in def routes, BackgroundTasks, 1 uvicorn worker unless said",
    "bound": "raw ASGI on uvicorn, orjson, redis.asyncio + hiredis",
}
