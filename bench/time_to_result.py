"""Time to result: from the moment a job was meant to be submitted until the client holds its
result, for one polling strategy, in an open loop.

Jobs start on a fixed schedule whether or not earlier ones finished, and each job's clock starts
at its scheduled time, so a server (or a client) that falls behind shows up in the figure instead
of quietly slowing the arrivals (coordinated omission). A client that cannot keep its own
schedule measures itself: the run fails instead of reporting it.
"""

import asyncio
import time
from dataclasses import dataclass

import httpx2 as httpx

from bench.results import TimeToResult
from bench.stats import percentile

# A client whose median submit starts this late behind its schedule cannot keep it: it, not the
# server, sets the pace. (Its p99 is reported: a shared core delays some submits, and since
# each job's clock starts at its scheduled time, that delay is in the figure, not hidden.)
MAX_CLIENT_MEDIAN_LAG_S = 0.02
BODY = b'{"input": "some_input_data"}'


class ClientSaturatedError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    interval_s: float | None = None  # short polling: sleep this long between polls
    wait_s: float | None = None  # long-poll: GET /predict/{id}?wait=S

    @classmethod
    def parse(cls, spec: str) -> "Strategy":
        """`poll:50ms` or `longpoll:2s`."""
        kind, _, amount = spec.partition(":")
        seconds = float(amount.removesuffix("ms")) / 1000 if amount.endswith("ms") else None
        seconds = seconds if seconds is not None else float(amount.removesuffix("s"))
        if kind == "poll":
            return cls(f"poll every {amount}", interval_s=seconds)
        if kind == "longpoll":
            return cls(f"long-poll wait={amount}", wait_s=seconds)
        raise ValueError(f"unknown polling strategy {spec!r}: use poll:<interval> or longpoll:<s>")


class _LongPollUnsupportedError(Exception):
    pass


async def _one_job(
    client: httpx.AsyncClient, strategy: Strategy, due: float, lags: list[float]
) -> tuple[float, int]:
    await asyncio.sleep(max(0.0, due - time.perf_counter()))
    lags.append(time.perf_counter() - due)
    submitted = await client.post(
        "/predict",
        content=BODY,
        headers={"Content-Type": "application/json", "async_mode": "true"},
    )
    if submitted.status_code != 202:
        raise RuntimeError(f"submit answered {submitted.status_code}: {submitted.text}")
    location = submitted.headers["location"]
    polls = 0
    while True:
        if strategy.wait_s is not None:
            asked = time.perf_counter()
            answer = await client.get(location, params={"wait": strategy.wait_s})
            polls += 1
            if answer.status_code == 202 and time.perf_counter() - asked < strategy.wait_s / 2:
                raise _LongPollUnsupportedError
        else:
            answer = await client.get(location)
            polls += 1
        if answer.status_code == 200:
            return time.perf_counter() - due, polls
        if answer.status_code != 202:
            raise RuntimeError(f"poll answered {answer.status_code}: {answer.text}")
        if strategy.interval_s is not None:
            await asyncio.sleep(strategy.interval_s)


async def measure(
    url: str, strategy: Strategy, *, rate_per_s: float, duration_s: float
) -> TimeToResult:
    jobs = max(1, int(rate_per_s * duration_s))
    lags: list[float] = []
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter() + 0.05
        tasks = [
            asyncio.create_task(_one_job(client, strategy, start + i / rate_per_s, lags))
            for i in range(jobs)
        ]
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    unsupported = any(isinstance(o, _LongPollUnsupportedError) for o in outcomes)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not unsupported:
            raise outcome
    finished = [o for o in outcomes if isinstance(o, tuple)]
    lags.sort()
    lag_p50 = percentile(lags, 50, empty=0.0)
    lag_p99 = percentile(lags, 99, empty=0.0)
    if lag_p50 > MAX_CLIENT_MEDIAN_LAG_S:
        raise ClientSaturatedError(
            f"{strategy.name} against {url}: the client started half its submits more than "
            f"{lag_p50 * 1000:.0f} ms late at {rate_per_s:.0f} jobs/s; lower BENCH_TTR_RATE"
        )
    ms = sorted(seconds * 1000 for seconds, _ in finished)
    return TimeToResult(
        strategy=strategy.name,
        jobs=jobs,
        completed=len(finished),
        supported=not unsupported,
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        polls_per_result=sum(p for _, p in finished) / len(finished) if finished else float("nan"),
        client_lag_p99_ms=lag_p99 * 1000,
    )
