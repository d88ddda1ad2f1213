"""The Python bound for the same API and the same Redis work: raw ASGI on uvicorn (httptools,
uvloop), orjson, redis.asyncio with hiredis, no framework, no validation beyond what the
routes need. Run it with `uvicorn bench.apps.bound:app --http httptools --loop uvloop`.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from bench.apps.contract import JOB_TTL_S, job_key
from service.models.base import Model
from service.models.loading import load_model
from service.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_NOT_FOUND = orjson.dumps({"error": "Prediction ID not found."})
_PROCESSING = orjson.dumps({"error": "Prediction is still being processed."})
_INVALID = orjson.dumps({"error": "Invalid request: body.input is required."})


class Bound:
    def __init__(self) -> None:
        settings = Settings()
        # Neither connects nor binds to an event loop yet: safe to build at import time.
        self.redis = Redis.from_url(settings.redis_url or "", max_connections=64)
        self.model: Model = load_model(settings)
        # Finishing tasks are referenced until done, so the loop cannot drop them.
        self.pending: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        path: str = scope["path"]
        if scope["method"] == "POST" and path == "/predict":
            await self.predict(scope, receive, send)
        elif scope["method"] == "GET" and path.startswith("/predict/"):
            await self.poll(path.removeprefix("/predict/"), send)
        elif path == "/readyz":
            await self.redis.ping()
            await respond(send, 200, b'{"status":"ready"}')
        else:
            await respond(send, 404, b'{"error":"Not found."}')

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            payload = orjson.loads(body)["input"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await respond(send, 422, _INVALID)
            return
        asynchronous = any(
            name in (b"async_mode", b"async-mode") and value.lower() == b"true"
            for name, value in scope["headers"]
        )
        if not asynchronous:
            [result] = await self.model.predict_batch([payload])
            await respond(send, 200, orjson.dumps({"input": payload, "result": result}))
            return
        prediction_id = str(uuid.uuid4())
        key = job_key(prediction_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "status": "queued",
                    "input": orjson.dumps(payload),
                    "created_at": repr(time.time()),
                },
            )
            pipe.expire(key, JOB_TTL_S)
            await pipe.execute()
        await respond(
            send,
            202,
            orjson.dumps({"prediction_id": prediction_id, "status": "queued"}),
            [(b"location", f"/predict/{prediction_id}".encode())],
        )
        task = asyncio.create_task(self.finish(key, payload))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def finish(self, key: str, payload: Any) -> None:
        [result] = await self.model.predict_batch([payload])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={"status": "succeeded", "result": result, "finished_at": repr(time.time())},
            )
            pipe.expire(key, JOB_TTL_S)
            await pipe.execute()

    async def poll(self, prediction_id: str, send: Send) -> None:
        fields = cast(dict[bytes, bytes], await self.redis.hgetall(job_key(prediction_id)))
        if not fields:
            await respond(send, 404, _NOT_FOUND)
        elif fields.get(b"status") != b"succeeded":
            await respond(send, 202, _PROCESSING)
        else:
            body = (
                b'{"input":'
                + fields[b"input"]
                + b',"result":'
                + orjson.dumps(fields[b"result"].decode())
                + b"}"
            )
            await respond(send, 200, body)


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = Bound()
