import logging
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.utils import HIREDIS_AVAILABLE

from service.metrics import observe_redis_round_trip
from service.redis_url import RedisTarget
from service.settings import Settings
from service.storage.autopipeline import AutoPipelinedRedis
from service.storage.cluster import AutoPipelinedRedisCluster, ServiceRedisCluster
from service.storage.measured import MeasuredAutoPipelinedRedis, MeasuredRedis

logger = logging.getLogger(__name__)


def _target(settings: Settings) -> RedisTarget:
    target = settings.redis_target
    if target is None:
        raise RuntimeError("REDIS_URL is not set (`make run` starts an embedded Redis for you)")
    return target


def _common(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_socket_timeout_s,
        "decode_responses": False,
        # No CLIENT probes on connect (SETINFO, MAINT_NOTIFICATIONS): a least-privilege ACL
        # user (service/storage/acl.py) is not granted CLIENT, and Redis logs every refusal.
        "driver_info": None,
        "maint_notifications_config": MaintNotificationsConfig(enabled=False),
    }


def _tls_options(target: RedisTarget) -> dict[str, Any]:
    """TLS, and the URL's `ssl_*` options (the CA to trust, a client certificate), for the
    sentinels: they are asked for the primary's address before any data node is reached, so
    they must be trusted with the same CA."""
    options = {name: value for name, value in target.options.items() if name.startswith("ssl_")}
    return {"ssl": True, **options}


def _retry() -> Retry:
    # One quick retry heals a pooled connection that a Redis restart broke; more would make
    # an outage hang requests instead of failing them fast with 503.
    return Retry(ExponentialBackoff(cap=0.05, base=0.01), 1)


def create_redis(settings: Settings, *, autopipelined: bool = False) -> Redis:
    """One client, and so one connection pool (per node), per worker process (built after the
    fork), for the topology REDIS_URL names: a single Redis, Sentinel or a Cluster
    (service/redis_url.py). A Cluster client is a `RedisCluster`, which takes the same
    commands; its type is given as `Redis` to the callers, which use only those."""
    target = _target(settings)
    if not HIREDIS_AVAILABLE:
        logger.warning("event=redis_parser parser=python hint='install hiredis for speed'")
    if target.mode == "cluster":
        return create_cluster(settings, target, autopipelined=autopipelined)  # type: ignore[return-value]
    if target.mode == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(host, port) for host, port in target.hosts],
            sentinel_kwargs={
                "password": settings.redis_sentinel_password,
                "socket_timeout": settings.redis_socket_timeout_s,
                "socket_connect_timeout": settings.redis_socket_timeout_s,
                # redis-py's default retries each sentinel for seconds: a /readyz with no
                # sentinel to answer (down, or one the CA does not vouch for) would hang.
                "retry": _retry(),
                **(_tls_options(target) if target.tls else {}),
            },
        )
        pool: Any = SentinelConnectionPool(  # type: ignore[no-untyped-call]
            target.primary_name,
            sentinel,
            db=target.db,
            max_connections=settings.redis_max_connections,
            retry=_retry(),
            **_common(settings),
            **target.connection_kwargs(),
        )
    else:
        # The pool blocks (up to the socket timeout) rather than failing when every
        # connection is busy, so a burst of requests queues instead of erroring.
        pool = BlockingConnectionPool.from_url(
            target.url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_socket_timeout_s,
            retry=_retry(),
            **_common(settings),
        )
    if autopipelined:
        pipelined = MeasuredAutoPipelinedRedis if settings.metrics_enabled else AutoPipelinedRedis
        return pipelined.over(pool)
    client = MeasuredRedis if settings.metrics_enabled else Redis
    return client.from_pool(pool)  # the client owns the pool and closes it


def create_cluster(
    settings: Settings, target: RedisTarget, *, autopipelined: bool = False
) -> RedisCluster:
    """A Cluster client from the seeds; it reads the slot map from the first that answers."""
    cls = AutoPipelinedRedisCluster if autopipelined else ServiceRedisCluster
    client = cls(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        max_connections=settings.redis_max_connections,
        # No retry of a command that may have run: redis-py would send it again after a
        # connection broke or timed out with it in flight, and a rate-limit call or a
        # mark-running would count twice. Redirections (MOVED, ASK, TRYAGAIN) are followed
        # all the same; a command a failing node never took is sent again by the service's
        # own paths (service/storage/cluster.py); the rest answer 503 and are retried by the
        # caller (a client with its Idempotency-Key, a consumer after its backoff).
        retry=Retry(NoBackoff(), 0),
        # A MOVED moves that one slot in the map. At every fifth, redis-py would instead close
        # all of the client's connections, failing the commands in flight on them and the
        # notifier's subscription: a resharding answered polls 503 the moment its slot moved.
        # The whole map is still read again after a connection to a node breaks (a failover).
        reinitialize_steps=0,
        require_full_coverage=False,
        # The seeds stay the ones REDIS_URL lists. redis-py would replace them with the nodes
        # it discovers, and a cluster that answers before it has slots (being created)
        # leaves it with none, for good.
        dynamic_startup_nodes=False,
        **_common(settings),
        **target.connection_kwargs(),
    )
    if isinstance(client, AutoPipelinedRedisCluster) and settings.metrics_enabled:
        client.observe = observe_redis_round_trip
    return client


async def close_redis(client: Redis) -> None:
    """Close a client made by create_redis, with its connections (and auto-pipelines)."""
    if isinstance(client, AutoPipelinedRedisCluster):
        await client.close_pipelines()
    await client.aclose()
