"""A Redis Cluster and a Sentinel group on this machine, from the redis-server on PATH, for
`make cluster`, `make sentinel` and the tests of failover and resharding.

Real processes rather than mocks because what these topologies do that a single Redis does not
(MOVED and ASK redirections, a replica promoted after a crash, a primary's address that changes)
happens only between real servers. Node timeout and down-after are 1 s so that a failover
takes seconds, not the default tens of seconds.

Restarting over an existing directory: a cluster reuses every node's nodes.conf and AOF (the
cluster comes back with its data and its roles); a sentinel group starts afresh, its nodes' and
sentinels' directories wiped, because its roles live in configuration files the sentinels
rewrite after a failover, and a primary started from the command line would contradict them.

With `tls` (a TlsConfig), every process listens in TLS only, and talks TLS to the others too
(replication, the cluster bus, sentinels to the servers and to each other); `url` is then the
`rediss+...` form that trusts the CA.
"""

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, urlencode

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.server.embedded_redis import _die_with_parent, find_redis_server
from service.server.process import free_port, free_port_block, stop

HOST = "127.0.0.1"
# Each node also listens on its port + 10000 for the cluster bus.
CLUSTER_BUS_OFFSET = 10_000


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((HOST, port)) == 0


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """PEM files for servers that listen in TLS only: the servers' certificate and key, and the
    CA that signed it, which the servers also accept client certificates from (optional ones:
    a client proves nothing but the server's identity unless it brings a certificate)."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def server_options(self, port: int) -> dict[str, str]:
        """A server's TLS listener on `port` and no plaintext one; its replication and, on a
        sentinel, its talk to the monitored servers and the other sentinels, in TLS too."""
        return {
            "port": "0",
            "tls-port": str(port),
            "tls-cert-file": str(self.cert_file),
            "tls-key-file": str(self.key_file),
            "tls-ca-cert-file": str(self.ca_file),
            "tls-auth-clients": "optional",
            "tls-replication": "yes",
        }

    def server_arguments(self, port: int) -> list[str]:
        """`server_options` as redis-server's command line (EmbeddedRedis's extra_args)."""
        return [
            item
            for name, value in self.server_options(port).items()
            for item in (f"--{name}", value)
        ]

    def query(self) -> str:
        """The URL query that has a client trust the CA, URL-encoded."""
        return "?" + urlencode({"ssl_ca_certs": str(self.ca_file)})


def _client(port: int, password: str | None, tls: TlsConfig | None = None) -> redis.Redis:
    # No retries: whoever asks polls, or wants to see the refusal (a node down, a password
    # missing) at once rather than after redis-py's backoff.
    secure: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(tls.ca_file)} if tls else {}
    return redis.Redis(
        host=HOST,
        port=port,
        password=password,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
        **secure,
    )


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until true; a Redis error (a node loading, refusing, gone) is a no."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {timeout_s}s")


@dataclass(eq=False)
class RedisNode:
    """One redis-server (or sentinel) process on a loopback port, its files under `directory`."""

    port: int
    directory: Path
    arguments: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, binary: Path) -> None:
        if _port_in_use(self.port):
            raise RuntimeError(f"something already listens on {self.address}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(binary), *self.arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            # A session of its own, as EmbeddedRedis's: Ctrl-C reaches whoever started the
            # topology, which stops the nodes itself. The parent-death signal is tied to the
            # starting thread: start nodes from a thread that outlives them.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server on {self.address} exited with {self.process.returncode}: "
                f"{_log_tail(self.log)}"
            )

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), SIGKILL after `timeout_s`."""
        if self.process is not None:
            stop(self.process, timeout_s)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.is_running():
            assert self.process is not None
            self.process.kill()
            self.process.wait()


class _Topology:
    """Processes started together and stopped together, as a context manager."""

    def __init__(
        self, directory: Path, password: str | None, binary: Path | None, tls: TlsConfig | None
    ) -> None:
        self.directory = directory.resolve()
        self.password = password
        self.tls = tls
        self.binary = find_redis_server(binary)
        self.nodes: list[RedisNode] = []

    def _processes(self) -> list[RedisNode]:
        return self.nodes

    def _data_node(self, port: int, *extra: str) -> RedisNode:
        directory = self.directory / str(port)
        listen = self.tls.server_arguments(port) if self.tls else ["--port", str(port)]
        arguments = [
            *listen,
            "--bind", HOST,
            "--dir", str(directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", str(directory / "redis.log"),
            "--daemonize", "no",
            # A replica's first sync starts at once rather than after the default 5 s wait
            # for more replicas to share the transfer.
            "--repl-diskless-sync-delay", "0",
            *extra,
        ]  # fmt: skip
        if self.password is not None:
            arguments += ["--requirepass", self.password, "--masterauth", self.password]
        return RedisNode(port, directory, arguments)

    def _credentials(self) -> str:
        """The password as a URL's userinfo (no user name: the default user)."""
        return f":{quote(self.password, safe='')}@" if self.password is not None else ""

    @property
    def _scheme(self) -> str:
        return "rediss" if self.tls else "redis"

    def _query(self) -> str:
        return self.tls.query() if self.tls else ""

    def client(self, node: RedisNode, *, authenticated: bool = True) -> redis.Redis:
        """A plain client of one node (the caller closes it)."""
        return _client(node.port, self.password if authenticated else None, self.tls)

    def _ask(self, node: RedisNode, *command: str) -> Any:
        """One command to one node, on a connection of its own."""
        with self.client(node) as client:
            return client.execute_command(*command)

    def _answers(self, node: RedisNode) -> bool:
        node.check_running()
        return bool(self._ask(node, "PING"))

    def _start_and_wait(self, nodes: Sequence[RedisNode], timeout_s: float) -> None:
        for node in nodes:
            node.start(self.binary)
        _wait_until(
            lambda: all(self._answers(node) for node in nodes),
            timeout_s,
            f"redis-server on {', '.join(node.address for node in nodes)} did not answer",
        )

    def alive(self) -> list[RedisNode]:
        return [node for node in self.nodes if node.is_running()]

    def node(self, port: int) -> RedisNode:
        return next(node for node in self.nodes if node.port == port)

    def kill(self, node: RedisNode) -> None:
        """SIGKILL, as a crash would: no AOF flush beyond what appendfsync already wrote."""
        node.kill()

    def _launch(self, timeout_s: float) -> None:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0) -> Self:
        try:
            self._launch(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        for node in self._processes():
            node.stop(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class _ClusterView:
    """One line of CLUSTER NODES: a node as another node (or itself) sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> "_ClusterView":
        fields = line.split()
        ranges = []
        for entry in fields[8:]:
            if entry.startswith("["):  # a slot being migrated or imported: not owned yet
                continue
            first, _, last = entry.partition("-")
            ranges.append((int(first), int(last or first)))
        return cls(
            node_id=fields[0],
            port=int(fields[1].split("@")[0].rsplit(":", 1)[1]),
            flags=frozenset(fields[2].split(",")),
            primary_id=None if fields[3] == "-" else fields[3],
            slots=tuple(ranges),
        )

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags and "fail" not in self.flags

    def owns(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)

    @property
    def slot_count(self) -> int:
        return sum(last - first + 1 for first, last in self.slots)


class LocalCluster(_Topology):
    """`primaries` primaries with `replicas_per_primary` replicas each, one directory per node
    (`directory/<port>`), ready when every node reports cluster_state:ok and every primary has
    its replicas attached."""

    def __init__(
        self,
        directory: Path,
        *,
        primaries: int = 3,
        replicas_per_primary: int = 1,
        ports: list[int] | None = None,
        node_timeout_ms: int = 1000,
        password: str | None = None,
        binary: Path | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        super().__init__(directory, password, binary, tls)
        size = primaries * (1 + replicas_per_primary)
        if ports is None:
            first = free_port_block(size, offsets=(0, CLUSTER_BUS_OFFSET))
            ports = list(range(first, first + size))
        if len(ports) != size:
            raise ValueError(
                f"{primaries} primaries with {replicas_per_primary} replicas each need "
                f"{size} ports, not {len(ports)}"
            )
        self.primary_count = primaries
        self.replicas_per_primary = replicas_per_primary
        cluster = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-announce-ip", HOST,
            *(["--tls-cluster", "yes"] if tls else []),
        ]  # fmt: skip
        self.nodes = [self._data_node(port, *cluster) for port in ports]
        # Slots a primary owned when `kill` crashed it, for `wait_for_failover` to follow.
        self._slots_at_kill: dict[int, tuple[tuple[int, int], ...]] = {}

    @property
    def url(self) -> str:
        """The first `primaries` nodes as seeds: a client discovers the rest from any of them."""
        seeds = ",".join(node.address for node in self.nodes[: self.primary_count])
        return f"{self._scheme}+cluster://{self._credentials()}{seeds}{self._query()}"

    def _cli(self, *arguments: str, timeout_s: float = 120.0) -> str:
        command = [str(self.binary.with_name("redis-cli")), *arguments]
        if not Path(command[0]).is_file():
            command[0] = shutil.which("redis-cli") or "redis-cli"
        if self.password is not None:
            command += ["-a", self.password, "--no-auth-warning"]
        if self.tls is not None:
            command += ["--tls", "--cacert", str(self.tls.ca_file)]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0 or "[ERR]" in done.stdout:
            raise RuntimeError(
                f"redis-cli {' '.join(arguments)} failed:\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def view(self, node: RedisNode | None = None) -> list[_ClusterView]:
        """CLUSTER NODES as `node` (by default the first running node) sees the cluster."""
        asked = node or self.alive()[0]
        text = str(self._ask(asked, "CLUSTER", "NODES"))
        return [_ClusterView.parse(line) for line in text.splitlines() if line.strip()]

    def _info(self, node: RedisNode) -> dict[str, str]:
        text = str(self._ask(node, "CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def node_id(self, node: RedisNode) -> str:
        return str(self._ask(node, "CLUSTER", "MYID"))

    def _is_ok(self, node: RedisNode) -> bool:
        return self._info(node).get("cluster_state") == "ok"

    def _is_ready(self) -> bool:
        """Every running node is ok and knows every node; every replica's link is up and its
        primary counts it; every running node sees these roles and no running node as failed.
        Then a failover can start at once, and `primaries()` is right whichever node it asks."""
        roles = {node.port: self._ask(node, "ROLE") for node in self.alive()}
        primaries = {port for port, role in roles.items() if role[0] == "master"}
        if len(primaries) != self.primary_count:
            return False
        for port, role in roles.items():
            info = self._info(self.node(port))
            if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != len(self.nodes):
                return False
            if role[0] == "slave" and role[3] != "connected":
                return False
            if role[0] == "master":
                followers = [p for p, r in roles.items() if r[0] == "slave" and r[2] == port]
                if len(role[2]) != len(followers):
                    return False
        return all(
            not seen.flags & {"fail", "fail?"} and seen.is_primary == (seen.port in primaries)
            for node in self.alive()
            for seen in self.view(node)
            if seen.port in roles
        )

    def _is_blank(self, node: RedisNode) -> bool:
        info = self._info(node)
        return info["cluster_known_nodes"] == "1" and info["cluster_slots_assigned"] == "0"

    def _launch(self, timeout_s: float) -> None:
        self._start_and_wait(self.nodes, timeout_s)
        blank = [self._is_blank(node) for node in self.nodes]
        if all(blank):
            self._cli(
                "--cluster", "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas", str(self.replicas_per_primary),
                "--cluster-yes",
            )  # fmt: skip
        elif any(blank):
            raise RuntimeError(
                f"{self.directory} holds a cluster of other ports than these: start it with "
                "the ports it was created with, or delete the directory"
            )
        self.wait_until_ready(timeout_s)

    def wait_until_ready(self, timeout_s: float = 30.0) -> None:
        _wait_until(self._is_ready, timeout_s, "the cluster was not ok with every replica attached")

    def _by_role(self, primary: bool) -> list[RedisNode]:
        return [
            self.node(seen.port)
            for seen in self.view()
            if "fail" not in seen.flags and seen.is_primary == primary
        ]

    def primaries(self) -> list[RedisNode]:
        """The nodes the cluster counts as primaries now (failed ones left out)."""
        return self._by_role(primary=True)

    def replicas(self) -> list[RedisNode]:
        """The nodes the cluster counts as replicas now (failed ones left out)."""
        return self._by_role(primary=False)

    def primary_for_slot(self, slot: int) -> RedisNode:
        owner = next(seen for seen in self.view() if seen.is_primary and seen.owns(slot))
        return self.node(owner.port)

    def slot_count(self, node: RedisNode) -> int:
        """How many slots `node` owns, as the cluster sees it."""
        return next(seen.slot_count for seen in self.view() if seen.port == node.port)

    def kill(self, node: RedisNode) -> None:
        """SIGKILL, as a crash would; the slots it owned are remembered for wait_for_failover."""
        self._slots_at_kill[node.port] = next(
            seen.slots for seen in self.view() if seen.port == node.port
        )
        node.kill()

    def restart(self, node: RedisNode, timeout_s: float = 30.0) -> None:
        """The same port and directory again: it reloads its nodes.conf and rejoins (a primary
        that was failed over comes back as a replica of its successor)."""
        self._start_and_wait([node], timeout_s)
        self.wait_until_ready(timeout_s)

    def _took_over(self, old_id: str, slots: tuple[tuple[int, int], ...]) -> int | None:
        """The port of the one primary that every running node sees owning `slots`."""
        owners = set()
        for node in self.alive():
            if not self._is_ok(node):
                return None
            for first, _ in slots:
                owner = next((s for s in self.view(node) if s.is_primary and s.owns(first)), None)
                if owner is None or owner.node_id == old_id:
                    return None
                owners.add(owner.port)
        return owners.pop() if len(owners) == 1 else None

    def wait_for_failover(self, old_primary: RedisNode, timeout_s: float = 30.0) -> RedisNode:
        """Once a replica of `old_primary` owns its slots and every running node is ok: the new
        primary."""
        seen = next(seen for seen in self.view() if seen.port == old_primary.port)
        slots = self._slots_at_kill.get(old_primary.port) or seen.slots
        if not slots:
            raise ValueError(f"{old_primary.address} owned no slots: nothing to fail over")
        promoted: list[int] = []

        def taken_over() -> bool:
            port = self._took_over(seen.node_id, slots)
            if port is not None:
                promoted.append(port)
            return port is not None

        _wait_until(taken_over, timeout_s, f"no replica took over from {old_primary.address}")
        return self.node(promoted[0])

    def _agree(self) -> bool:
        """Every running node sees the same slot owners."""
        views = {
            frozenset((s.port, s.slots) for s in self.view(node) if s.is_primary)
            for node in self.alive()
        }
        return len(views) == 1

    def reshard(
        self, slots: int, from_node: RedisNode, to_node: RedisNode, timeout_s: float = 120.0
    ) -> None:
        """Move `slots` slots (and their keys) with redis-cli, and return once every running
        node agrees on the new owners. Safe to call from a thread while clients use the
        cluster: it talks to the nodes through redis-cli and connections of its own."""
        self._cli(
            "--cluster", "reshard", to_node.address,
            "--cluster-from", self.node_id(from_node),
            "--cluster-to", self.node_id(to_node),
            "--cluster-slots", str(slots),
            "--cluster-yes",
            timeout_s=timeout_s,
        )  # fmt: skip
        _wait_until(self._agree, timeout_s, "the nodes did not agree on the slots' owners")


class LocalSentinel(_Topology):
    """A primary, `replicas` replicas and `sentinels` sentinels (quorum 2) watching them as
    `master_name`. Data nodes in `directory/<port>`, sentinels in `directory/sentinel-<port>`;
    the sentinels take no password, the data nodes take `password` when given."""

    def __init__(
        self,
        directory: Path,
        *,
        master_name: str = "mymaster",
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 10_000,
        password: str | None = None,
        binary: Path | None = None,
        ports: list[int] | None = None,
        sentinel_ports: list[int] | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        super().__init__(directory, password, binary, tls)
        ports = ports if ports is not None else [free_port() for _ in range(1 + replicas)]
        if sentinel_ports is None:
            sentinel_ports = [free_port() for _ in range(sentinels)]
        if len(ports) != 1 + replicas or len(sentinel_ports) != sentinels:
            raise ValueError(f"need {1 + replicas} data ports and {sentinels} sentinel ports")
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        primary, *rest = ports
        self.nodes = [self._data_node(primary)] + [
            self._data_node(port, "--replicaof", HOST, str(primary)) for port in rest
        ]
        self.sentinels = [
            RedisNode(port, self.directory / f"sentinel-{port}", [], None)
            for port in sentinel_ports
        ]
        for sentinel in self.sentinels:
            sentinel.arguments = [str(sentinel.directory / "sentinel.conf"), "--sentinel"]

    def _processes(self) -> list[RedisNode]:
        return [*self.sentinels, *self.nodes]

    @property
    def url(self) -> str:
        hosts = ",".join(sentinel.address for sentinel in self.sentinels)
        return (
            f"{self._scheme}+sentinel://{self._credentials()}{hosts}/{self.master_name}"
            f"{self._query()}"
        )

    def _sentinel_config(self, sentinel: RedisNode) -> str:
        primary, name = self.nodes[0], self.master_name
        listen = self.tls.server_options(sentinel.port) if self.tls else {"port": sentinel.port}
        lines = [
            *(f"{name} {value}" for name, value in listen.items()),
            f"bind {HOST}",
            f"dir {sentinel.directory}",
            f"logfile {sentinel.log}",
            f"sentinel monitor {name} {HOST} {primary.port} 2",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.password is not None:
            lines.append(f"sentinel auth-pass {name} {self.password}")
        return "\n".join(lines) + "\n"

    def sentinel_client(self, sentinel: RedisNode) -> redis.Redis:
        """A client of one sentinel (the caller closes it); sentinels take no password."""
        return _client(sentinel.port, None, self.tls)

    def _sentinel_is_ready(self, sentinel: RedisNode) -> bool:
        sentinel.check_running()
        with self.sentinel_client(sentinel) as client:
            fields = client.sentinel_master(self.master_name)
        return (
            int(fields["num-other-sentinels"]) == len(self.sentinels) - 1
            and int(fields["num-slaves"]) == len(self.nodes) - 1
        )

    def _replicas_in_sync(self) -> bool:
        role = self._ask(self.nodes[0], "ROLE")
        return len(role[2]) == len(self.nodes) - 1

    def _launch(self, timeout_s: float) -> None:
        for node in self._processes():
            shutil.rmtree(node.directory, ignore_errors=True)
        self._start_and_wait(self.nodes, timeout_s)
        _wait_until(self._replicas_in_sync, timeout_s, "the replicas did not attach")
        for sentinel in self.sentinels:
            sentinel.directory.mkdir(parents=True)
            (sentinel.directory / "sentinel.conf").write_text(self._sentinel_config(sentinel))
            sentinel.start(self.binary)
        _wait_until(
            lambda: all(self._sentinel_is_ready(s) for s in self.sentinels),
            timeout_s,
            "the sentinels did not see each other and every replica",
        )

    def _primary_port(self, sentinel: RedisNode) -> int:
        with self.sentinel_client(sentinel) as client:
            _, port = client.sentinel_get_master_addr_by_name(self.master_name)
        return int(port)

    def primary(self) -> RedisNode:
        """The primary as the first running sentinel names it."""
        sentinel = next(s for s in self.sentinels if s.is_running())
        return self.node(self._primary_port(sentinel))

    def wait_for_failover(self, old_primary: RedisNode, timeout_s: float = 30.0) -> RedisNode:
        """Once every running sentinel names another primary, and it says it is one: that
        primary."""

        def promoted() -> bool:
            ports = {self._primary_port(s) for s in self.sentinels if s.is_running()}
            if len(ports) != 1 or old_primary.port in ports:
                return False
            return bool(self._ask(self.node(ports.pop()), "ROLE")[0] == "master")

        _wait_until(promoted, timeout_s, f"the sentinels did not replace {old_primary.address}")
        return self.primary()
