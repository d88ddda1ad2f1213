"""Where each process runs: the server on its own core, the load generator and Redis on the
other, so that the builds are compared under the same placement."""

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placement:
    server_cpus: frozenset[int]
    load_cpus: frozenset[int]

    @property
    def pinned(self) -> bool:
        return bool(self.server_cpus) and not self.server_cpus & self.load_cpus

    # A child inherits the harness's affinity (the load cores), so a set of cores is always
    # given explicitly: with `shared`, the server and wrk get every core.
    def server_command(self, command: list[str]) -> list[str]:
        return _taskset(self.server_cpus, command) if self.server_cpus else command

    def load_command(self, command: list[str]) -> list[str]:
        return _taskset(self.load_cpus, command) if self.server_cpus else command

    def pin_load(self, pid: int) -> None:
        """Move a running process (Redis, this harness) to the load generator's cores."""
        if self.server_cpus:
            os.sched_setaffinity(pid, self.load_cpus)

    def shared(self) -> "Placement":
        """No pinning: server, load generator and Redis all on every core."""
        everything = self.server_cpus | self.load_cpus
        return Placement(everything, everything)

    def describe(self) -> str:
        if not self.server_cpus:
            return "not pinned (fewer than 2 cores available): server and load share the CPU"
        if not self.pinned:
            return (
                f"not pinned: server, load generator and Redis share CPU {sorted(self.server_cpus)}"
            )
        return (
            f"server on CPU {sorted(self.server_cpus)}, "
            f"load generator and Redis on CPU {sorted(self.load_cpus)}"
        )


def _taskset(cpus: frozenset[int], command: list[str]) -> list[str]:
    return ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), *command]


def default_placement(server_cores: int = 1) -> Placement:
    """The first `server_cores` of the cores this process may use serve; the rest load."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) <= server_cores:
        return Placement(frozenset(), frozenset(available))
    return Placement(frozenset(available[:server_cores]), frozenset(available[server_cores:]))
