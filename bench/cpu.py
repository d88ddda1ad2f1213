"""CPU use of each core over an interval, read from /proc/stat (Linux).

It tells a server-bound run (the server's core busy) from a generator-bound one (the
generator's core full while the server's core idles), which must not be reported.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def _core_times() -> dict[int, tuple[int, int]]:
    """busy and total jiffies of each core."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(v) for v in fields]
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values[:8])  # guest time is already counted in user
            times[int(name[3:])] = (total - idle, total)
    return times


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """Busy fraction of each core set over one measured interval."""

    server_busy: float
    load_busy: float


class CpuMeter:
    def __init__(self, server_cpus: Iterable[int], load_cpus: Iterable[int]) -> None:
        self.server_cpus = tuple(server_cpus)
        self.load_cpus = tuple(load_cpus)
        self._start = _core_times()

    def stop(self) -> CpuWindow:
        end = _core_times()

        def busy(cpus: tuple[int, ...]) -> float:
            spent = sum(end[c][0] - self._start[c][0] for c in cpus)
            total = sum(end[c][1] - self._start[c][1] for c in cpus)
            return spent / total if total else 0.0

        return CpuWindow(busy(self.server_cpus), busy(self.load_cpus))
