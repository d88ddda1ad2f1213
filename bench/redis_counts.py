"""Redis work per API request, from the server's own counters (`INFO stats`, `INFO
commandstats`), so that any client (a reference build, the service) is measured the same way.

A round trip is one read event on the server: a pipeline sent in one write is read at once,
while N separate commands are N reads. The counting client's own INFO adds one read and one
`info` call to every delta, which `delta` takes off.
"""

from collections import Counter
from dataclasses import dataclass

import redis

from bench.results import RedisWorkPerRequest


@dataclass(frozen=True, slots=True)
class RedisWork:
    round_trips: int
    commands: dict[str, int]

    def per(self, requests: int) -> RedisWorkPerRequest:
        return RedisWorkPerRequest(
            self.round_trips / requests,
            {name: n / requests for name, n in sorted(self.commands.items())},
        )


class RedisCounter:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self._reads = 0
        self._commands: Counter[str] = Counter()

    def _read(self) -> tuple[int, Counter[str]]:
        stats = self.client.info("stats")
        commandstats = self.client.info("commandstats")
        # Two INFO calls per snapshot; the second is the one every delta must not count twice.
        calls = Counter(
            {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in commandstats.items()}
        )
        return int(stats["total_reads_processed"]), calls

    def start(self) -> None:
        self._reads, self._commands = self._read()

    def delta(self) -> RedisWork:
        reads, commands = self._read()
        # Between the two snapshots this client issued exactly two INFO commands: the
        # commandstats one of `start` and the stats one here.
        work = commands - self._commands
        work["info"] -= 2
        return RedisWork(reads - self._reads - 2, {k: v for k, v in work.items() if v > 0})

    def close(self) -> None:
        self.client.close()
