"""Auto-pipelining for redis.asyncio: the commands that concurrent requests issue within one
event-loop iteration go out as one write on one connection, and each caller gets its own reply.

redis-py has no such mode (ioredis's `enableAutoPipelining` is the model), so it is written
here. Redis answers the commands of a connection in order, so the replies are matched to the
callers by a FIFO of futures. Only non-blocking commands may come this way: a blocking read
would hold up every caller behind it (consumers and pub/sub use the ordinary pool).
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, cast

import hiredis
from hiredis import pack_command
from redis._parsers.base import BaseParser
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError, RedisError, ResponseError
from redis.typing import EncodableT

_EMPTY_RESPONSE = "EMPTY_RESPONSE"  # redis-py's option names, as its parse_response reads them
_NEVER_DECODE = "NEVER_DECODE"
# What one read of the socket may take: replies to many callers at once.
_READ_SIZE = 65536


@dataclass
class PipelineStats:
    """Deterministic counts: how many writes carried how many commands."""

    writes: int = 0
    commands: int = 0


def _pack(connection: AbstractConnection, args: Sequence[EncodableT]) -> bytes:
    name = args[0]
    if isinstance(name, str) and " " in name:  # redis-py names some commands "SCRIPT LOAD"
        args = (*name.split(), *args[1:])
    try:
        packed: bytes = pack_command(tuple(args))  # type: ignore[arg-type]
    except TypeError:
        # Types hiredis does not pack (a bytearray, a memoryview): redis-py's packer does.
        return b"".join(connection.pack_command(*args))
    return packed


class CommandNotSentError(RedisConnectionError):
    """The command never reached Redis (no connection could be opened, or the write failed
    before any byte left): unlike a connection lost with the command in flight, it is safe to
    send it again, elsewhere."""


class AutoPipeline:
    """One connection; everything submitted in an event-loop iteration is one write."""

    def __init__(self, make_connection: Callable[[], AbstractConnection]) -> None:
        self._make_connection = make_connection
        self._connection: AbstractConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[tuple[Sequence[EncodableT], asyncio.Future[Any]]] = []
        self._in_flight: deque[asyncio.Future[Any]] = deque()
        self._reply_wanted = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._closed = False
        # One WAIT, sent after the writes of the next flush, for all who asked for it.
        self._wait: tuple[int, int, asyncio.Future[Any]] | None = None
        self.stats = PipelineStats()

    def submit(self, args: Sequence[EncodableT]) -> asyncio.Future[Any]:
        """The raw reply of one command, once the batch it joins has been answered."""
        if self._closed:
            raise RedisConnectionError("the auto-pipeline is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((args, future))
        self._schedule(loop)
        return future

    def submit_wait(self, replicas: int, timeout_ms: int) -> asyncio.Future[Any]:
        """The reply of a WAIT sent after every command queued until the next write: the
        number of replicas that have them all (service/storage/replication.py)."""
        if self._closed:
            raise RedisConnectionError("the auto-pipeline is closed")
        loop = asyncio.get_running_loop()
        if self._wait is None:
            self._wait = (replicas, timeout_ms, loop.create_future())
        else:
            wanted, waited, future = self._wait
            self._wait = (max(wanted, replicas), max(waited, timeout_ms), future)
        self._schedule(loop)
        return self._wait[2]

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued and self._wait is None:
            return
        connection = self._connection
        if connection is None or not connection.is_connected:
            if self._connecting is None:
                self._connecting = asyncio.create_task(self._connect())
            return  # _connect flushes what queued up meanwhile
        if self._wait is not None:  # last: it covers every write before it
            replicas, timeout_ms, waited = self._wait
            self._wait = None
            self._queued.append((("WAIT", replicas, timeout_ms), waited))
        batch, self._queued = self._queued, []
        live = [(args, future) for args, future in batch if not future.cancelled()]
        if not live:
            return
        try:
            # hiredis packs in C; redis-py's own packer is Python, a few microseconds a command.
            packed = b"".join([_pack(connection, args) for args, _ in live])
            writer = connection._writer
            if writer is None:
                raise RedisConnectionError("not connected")
            # The write is synchronous so that the FIFO of futures has the order of the bytes.
            writer.write(packed)
        except Exception as exc:
            self._fail([future for _, future in live], CommandNotSentError(str(exc)))
            self._reset(exc)
            return
        self._in_flight.extend(future for _, future in live)
        self._reply_wanted.set()
        self.stats.writes += 1
        self.stats.commands += len(live)

    async def _connect(self) -> None:
        try:
            connection = self._make_connection()
            await connection.connect()  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            queued, self._queued = [future for _, future in self._queued], []
            if self._wait is not None:
                queued.append(self._wait[2])
                self._wait = None
            self._fail(queued, CommandNotSentError(str(exc)))
            return
        finally:
            self._connecting = None
        self._connection = connection
        self._reader = asyncio.create_task(self._read_replies(connection), name="autopipeline")
        self._flush()

    async def _read_replies(self, connection: AbstractConnection) -> None:
        """Read what the socket has and hand out every whole reply in it, in order: one read
        (and one timeout) per burst of replies, not a coroutine per reply as redis-py's own
        read_response costs. The replies are parsed by hiredis, as redis-py parses them, with
        its error classes (a NOSCRIPT is redis-py's NoScriptError, which reloads a script)."""
        replies = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        stream: asyncio.StreamReader | None = connection._reader
        timeout_s = connection.socket_timeout
        in_flight = self._in_flight
        while True:
            if not in_flight:
                self._reply_wanted.clear()
                await self._reply_wanted.wait()
                if connection is not self._connection:
                    return
                in_flight = self._in_flight
            reply: Any = replies.gets()
            if reply is False:  # no whole reply buffered: read the socket
                try:
                    if stream is None:
                        raise RedisConnectionError("not connected")
                    async with asyncio.timeout(timeout_s):
                        data = await stream.read(_READ_SIZE)
                    if not data:
                        raise RedisConnectionError("Redis closed the connection")
                except BaseException as exc:
                    # The connection is gone: every caller still waiting on it fails, and the
                    # next command opens a new one.
                    self._reset(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    return
                replies.feed(data)
                continue
            future = in_flight.popleft()
            if future.done():  # its caller was cancelled; the reply is read and dropped
                continue
            if isinstance(reply, ReadOnlyError):
                # A primary demoted to a replica (Sentinel failed over): the next connection
                # asks where the primary is now.
                future.set_exception(reply)
                self._reset(reply)
                return
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            elif isinstance(reply, RedisConnectionError):
                self._reset(reply)
                return
            else:
                future.set_result(reply)

    def _reset(self, cause: BaseException) -> None:
        error = cause if isinstance(cause, RedisError) else RedisConnectionError(str(cause))
        in_flight, self._in_flight = list(self._in_flight), deque()
        self._fail(in_flight, error)
        connection, self._connection = self._connection, None
        if connection is not None:
            asyncio.get_running_loop().create_task(connection.disconnect(nowait=True))
        self._reply_wanted.set()  # a reader parked on the old connection exits

    @staticmethod
    def _fail(futures: Sequence[asyncio.Future[Any]], error: BaseException) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        self._closed = True
        self._reset(RedisConnectionError("the auto-pipeline is closed"))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def parsed(
    callbacks: Mapping[Any, Any],
    command_name: str,
    response: Any,
    options: dict[str, Any],
) -> Any:
    """A raw reply through redis-py's response callback for its command, as redis-py's own
    path parses it (without the options that only steer that path)."""
    for name in (_EMPTY_RESPONSE, _NEVER_DECODE, "keys"):
        options.pop(name, None)
    callback = callbacks.get(command_name)
    if callback is None:
        return response
    result = callback(response, **options)
    return await result if asyncio.iscoroutine(result) else result


class AutoPipelinedRedis(Redis):
    """A redis.asyncio client whose commands go through an AutoPipeline; `pipeline()` and
    everything else that takes a pooled connection work as usual."""

    autopipeline: AutoPipeline
    # Told each command's name and time to its reply, when set (service/storage/measured.py):
    # timed here, in the one coroutine a command costs, rather than in a wrapper around it.
    observe: Callable[[str, float], None] | None

    @classmethod
    def over(
        cls, pool: ConnectionPool, observe: Callable[[str, float], None] | None = None
    ) -> "AutoPipelinedRedis":
        client = cast(AutoPipelinedRedis, cls.from_pool(pool))
        client.autopipeline = AutoPipeline(pool.make_connection)
        client.observe = observe
        return client

    async def execute_command(self, *args: EncodableT, **options: Any) -> Any:
        command_name = str(args[0])
        observe = self.observe
        start = perf_counter()
        try:
            response = await self.autopipeline.submit(args)
        except ResponseError:
            if _EMPTY_RESPONSE in options:
                return options[_EMPTY_RESPONSE]
            raise
        finally:
            if observe is not None:
                observe(command_name, perf_counter() - start)
        return await parsed(self.response_callbacks, command_name, response, options)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.autopipeline.close()
        await super().aclose(close_connection_pool)
