"""What a Redis that cannot answer raises, whatever the topology: redis-py's RedisError, an
OSError from below it, and on a Cluster RedisClusterException (no node reachable at all, a slot
no node covers), which redis-py does not derive from RedisError. Every place that turns an
unavailable Redis into a 503 or a retry catches this tuple, so that a Cluster outage is never
a 500, nor a consumer task that ends."""

from redis.exceptions import ClusterDownError, RedisClusterException, RedisError, TryAgainError

STORAGE_ERRORS = (RedisError, RedisClusterException, OSError)
# Error replies that mean "not now" (a Cluster failing over, forming, or moving a slot's keys),
# not a fault of the command.
TRANSIENT_REPLIES = (ClusterDownError, TryAgainError)
