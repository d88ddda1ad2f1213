"""Bounded bursts of requests against a served API on 127.0.0.1, for the durability tests."""

import asyncio
import time
from collections.abc import Callable

import httpx2 as httpx


async def _submit_many(
    url: str, count: int, concurrency: int, on_accepted: Callable[[int], None] | None
) -> list[str]:
    accepted: list[str] = []
    queue = list(range(count))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:

        async def submitter() -> None:
            while queue:
                queue.pop()
                try:
                    response = await client.post(
                        "/predict", json={"input": "load"}, headers={"async_mode": "true"}
                    )
                except httpx.TransportError:
                    continue  # not accepted: the process that held it died
                if response.status_code == 202:
                    accepted.append(response.json()["prediction_id"])
                    if on_accepted is not None:
                        on_accepted(len(accepted))

        await asyncio.gather(*(submitter() for _ in range(concurrency)))
    return accepted


def submit_many(
    url: str, count: int, concurrency: int = 16, on_accepted: Callable[[int], None] | None = None
) -> list[str]:
    """Submit `count` async predictions; the ids of those answered 202."""
    return asyncio.run(_submit_many(url, count, concurrency, on_accepted))


async def _final_bodies(url: str, ids: list[str], timeout_s: float) -> dict[str, dict[str, object]]:
    deadline = time.monotonic() + timeout_s
    final: dict[str, dict[str, object]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def follow(prediction_id: str) -> None:
            while time.monotonic() < deadline:
                try:
                    response = await client.get(f"/predict/{prediction_id}", params={"wait": 2})
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
                    continue
                if response.status_code == 200:
                    final[prediction_id] = response.json()
                    return
                await asyncio.sleep(0.05 if response.status_code == 202 else 0.2)

        semaphore = asyncio.Semaphore(64)

        async def bounded(prediction_id: str) -> None:
            async with semaphore:
                await follow(prediction_id)

        await asyncio.gather(*(bounded(i) for i in ids))
    return final


def final_bodies(url: str, ids: list[str], timeout_s: float = 60) -> dict[str, dict[str, object]]:
    """Long-poll each id until it is final; the final bodies of those that got there."""
    return asyncio.run(_final_bodies(url, ids, timeout_s))
