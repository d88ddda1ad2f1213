"""Auto-pipelining on a Redis Cluster: one AutoPipeline per primary, each command routed by
its key's slot from redis-py's slot map.

redis-py's `RedisCluster` routes, follows `MOVED` and `ASK`, and refreshes its slot map after
a failover or a resharding, but sends each command on a pooled connection of its own. This
client keeps all of that and adds only the fast path: a command whose slot is known and whose
primary answers goes out in that primary's auto-pipelined write. Any redirection or cluster
error sends the command once more through redis-py's own path, which follows it and updates
the slot map that the fast path reads; that is safe because a node that redirects or refuses
a command has not run it. A connection lost with commands in flight is the one case where a
command may have run: it is failed (the API answers 503), never sent again, and the slot map
is refreshed before the next command.
"""

from collections.abc import Callable
from time import perf_counter
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.typing import EncodableT

from service.storage.autopipeline import AutoPipeline, CommandNotSentError, parsed
from service.storage.keys import key_slot

_EMPTY_RESPONSE = "EMPTY_RESPONSE"
# How uvloop refuses a write on a transport already closed.
_CLOSED_TRANSPORT = "the handler is closed"
# Commands whose one key is their first argument, and the scripts (EVALSHA sha numkeys key...)
# whose first key names the slot of all: what the service sends on its hot paths.
_FIRST_KEY_COMMANDS = frozenset({"HGETALL", "GET", "SET", "HSET", "EXISTS", "XLEN", "DEL"})
_SCRIPT_COMMANDS = frozenset({"EVALSHA", "EVAL"})
# Replies that mean the node did not run the command: redis-py's path retries them properly.
NOT_RUN = (MovedError, AskError, TryAgainError, ClusterDownError, SlotNotCoveredError)


def _tagged_slot(key: EncodableT) -> int:
    raw = key if isinstance(key, bytes) else str(key).encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return key_slot(raw)


def command_slot(args: tuple[EncodableT, ...]) -> int | None:
    """The slot a command must run in, for the commands the fast path takes; None for others."""
    name = str(args[0]).upper()
    if name in _SCRIPT_COMMANDS:
        if len(args) > 3 and int(args[2]) > 0:
            return _tagged_slot(args[3])
        return None
    if name in _FIRST_KEY_COMMANDS and len(args) > 1:
        return _tagged_slot(args[1])
    return None


class ServiceRedisCluster(RedisCluster):
    """redis-py's RedisCluster, except that a cluster whose nodes answer before any slot is
    assigned (one being created) is an unavailable cluster, RedisClusterException, rather than
    the IndexError that redis-py's slot-map reader raises then."""

    async def initialize(self, *args: Any, **kwargs: Any) -> "ServiceRedisCluster":
        try:
            await super().initialize(*args, **kwargs)
        except IndexError as exc:
            raise RedisClusterException("no primary of the Redis Cluster serves slots") from exc
        return self

    async def _determine_slot(self, command: str, *args: Any) -> int:
        """XREADGROUP's keys follow its STREAMS word, a place Redis's command table marks as
        movable: redis-py would ask the node (COMMAND GETKEYS) on every read, one more round
        trip per consumer batch. They are read here; any other command is redis-py's."""
        name = str(command).upper()
        if name == "XREADGROUP":
            words = [arg.upper() if isinstance(arg, bytes | str) else arg for arg in args]
            for streams_word in (b"STREAMS", "STREAMS"):
                if streams_word in words:
                    return self.keyslot(args[words.index(streams_word) + 1])
        return await super()._determine_slot(command, *args)

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        """redis-py's, except for two things.

        The slot map is read before the command is routed: redis-py chooses how to route a
        command before it reads a map it lacks, and without one it sends a keyed command to
        any node. At start-up, the consumers' first commands drew MOVED answers, and (before
        create_cluster set reinitialize_steps=0) at every fifth MOVED redis-py closed all of
        the client's connections, the commands in flight on them included (a rate-limit call
        answered 503 in a healthy Cluster).

        A write on a connection that redis-py closed meanwhile (it closes every connection
        when the cluster reports itself down, while other commands are still being sent) is
        the ConnectionError it is, not uvloop's RuntimeError: the command was not sent, and
        the caller answers 503."""
        try:
            if self._initialize:
                await self.initialize()
            return await super().execute_command(*args, **kwargs)
        except RuntimeError as exc:
            if _CLOSED_TRANSPORT not in str(exc):
                raise
            raise RedisConnectionError(str(exc)) from exc

    async def refresh_slots(self) -> None:
        """Read the slot map again now (after a connection to a node broke)."""
        self._initialize = True
        await self.initialize()


class AutoPipelinedRedisCluster(ServiceRedisCluster):
    """A RedisCluster whose keyed commands go through one AutoPipeline per primary."""

    observe: Callable[[str, float], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pipelines: dict[str, AutoPipeline] = {}

    def _pipeline_for(self, node: ClusterNode) -> AutoPipeline:
        pipeline = self._pipelines.get(node.name)
        if pipeline is None:

            def connect() -> AbstractConnection:
                connection: AbstractConnection = node.connection_class(**node.connection_kwargs)
                return connection

            pipeline = self._pipelines[node.name] = AutoPipeline(connect)
        return pipeline

    def pipeline_for_slot(self, slot: int) -> AutoPipeline:
        """The auto-pipeline of the primary that serves `slot` now (for a command that must
        follow another on the same connection, such as WAIT)."""
        return self._pipeline_for(self.nodes_manager.get_node_from_slot(slot))

    async def execute_command(self, *args: EncodableT, **options: Any) -> Any:
        fast = not self._initialize and "target_nodes" not in options
        slot = command_slot(args) if fast else None
        if slot is None:
            return await super().execute_command(*args, **options)
        command_name = str(args[0])
        observe = self.observe
        start = perf_counter()
        try:
            response = await self.pipeline_for_slot(slot).submit(args)
        except NOT_RUN:
            return await super().execute_command(*args, **options)
        except CommandNotSentError:
            self._initialize = True  # the node is gone: read the slot map again
            return await super().execute_command(*args, **options)
        except RedisConnectionError:
            self._initialize = True
            raise
        except ResponseError:
            if _EMPTY_RESPONSE in options:
                return options[_EMPTY_RESPONSE]
            raise
        finally:
            if observe is not None:
                observe(command_name, perf_counter() - start)
        return await parsed(self.response_callbacks, command_name, response, options)

    async def close_pipelines(self) -> None:
        """Close the auto-pipelines (redis-py's aclose(), which its own path also calls before
        it reads the slot map again, leaves them be)."""
        pipelines, self._pipelines = list(self._pipelines.values()), {}
        for pipeline in pipelines:
            await pipeline.close()
