import logging

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.utils import HIREDIS_AVAILABLE

from service.settings import Settings
from service.storage.autopipeline import AutoPipelinedRedis
from service.storage.measured import MeasuredAutoPipelinedRedis, MeasuredRedis

logger = logging.getLogger(__name__)


def create_redis(settings: Settings, *, autopipelined: bool = False) -> Redis:
    """One client, and so one connection pool, per worker process (built after the fork).

    The pool blocks (up to the socket timeout) rather than failing when every connection is
    busy, so a burst of requests queues instead of erroring.
    """
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set (`make run` starts an embedded Redis for you)")
    if not HIREDIS_AVAILABLE:
        logger.warning("event=redis_parser parser=python hint='install hiredis for speed'")
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_socket_timeout_s,
        decode_responses=False,
        # No CLIENT probes on connect (SETINFO, MAINT_NOTIFICATIONS): a least-privilege ACL
        # user (service/storage/acl.py) is not granted CLIENT, and Redis logs every refusal.
        driver_info=None,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        # One quick retry heals a pooled connection that a Redis restart broke; more would
        # make an outage hang requests instead of failing them fast with 503.
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
    )
    if autopipelined:
        pipelined = MeasuredAutoPipelinedRedis if settings.metrics_enabled else AutoPipelinedRedis
        return pipelined.over(pool)
    client = MeasuredRedis if settings.metrics_enabled else Redis
    return client.from_pool(pool)  # the client owns the pool and closes it
