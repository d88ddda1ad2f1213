"""The least a Redis user needs to run this service: the commands it sends (and those its Lua
scripts run, which Redis checks too), on keys and channels under KEY_PREFIX only.

`python -m service acl [USER]` prints the rule as a line for an ACL file (`aclfile`);
`ACL SETUSER` takes the same words. Works on Redis 6.2 and 7.
"""

SERVICE_COMMANDS = (
    # connection and readiness
    "ping",
    "select",
    # the Lua scripts (redis-py loads a script that Redis lost, then calls it again)
    "evalsha",
    "eval",
    "script|load",
    # what the API and the consumers send
    "hgetall",
    "xgroup|create",
    "xreadgroup",
    "xautoclaim",
    "xclaim",
    "xack",
    "subscribe",
    "unsubscribe",
    "wait",  # REDIS_WAIT_REPLICAS
    # what the scripts run (service/storage/lua/)
    "get",
    "set",
    "incr",
    "incrby",
    "decrby",
    "hset",
    "hget",
    "hmget",
    "hincrby",
    "expire",
    "exists",
    "xadd",
    "xinfo|consumers",
    "xgroup|delconsumer",
    "xinfo|groups",  # the queue sampler's script
    "xpending",  # also a cancel's: has a consumer read the job's entry?
    "xrange",
    "xdel",  # a cancel takes an entry no consumer read out of the stream
    # webhook deliveries: retries wait in a sorted set until due
    "zadd",
    "zrange",
    "zrangebyscore",
    "zrem",
    "publish",
    "time",
)
# On a Redis Cluster (7+; Redis 6.2 knows no sharded pub/sub, and refuses rules naming it):
# the slot map, redirections and sharded pub/sub. Each node of the Cluster takes the rule.
CLUSTER_COMMANDS = (
    "cluster|slots",
    "cluster|shards",
    "command",
    "asking",
    "readonly",
    "ssubscribe",
    "sunsubscribe",
    "spublish",
)


def acl_rules(password: str, prefix: str, *, cluster: bool = False) -> list[str]:
    """`ACL SETUSER <user>` arguments: on, the password, the prefix's keys and channels,
    every command refused but the service's own. Channel patterns (`&`) exist from Redis 6.2,
    where `reset` grants all channels (acl-pubsub-default allchannels; Redis 7 grants none)
    and a pattern after that is an error: `resetchannels` first works on both."""
    return [
        "reset",
        "resetchannels",
        "on",
        f">{password}",
        f"~{prefix}*",
        f"&{prefix}*",
        "-@all",
        *(f"+{command}" for command in SERVICE_COMMANDS),
        *(f"+{command}" for command in CLUSTER_COMMANDS if cluster),
    ]


def acl_line(user: str, prefix: str, *, cluster: bool = False) -> str:
    """The rule as a line of an ACL file, with a placeholder for the password."""
    return " ".join(["user", user, *acl_rules("<password>", prefix, cluster=cluster)])
