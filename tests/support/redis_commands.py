import redis

# The test's own probes, and what a new connection sends once (not per request).
_NOT_PER_REQUEST = (
    "cmdstat_info",
    "cmdstat_config",
    "cmdstat_client",
    "cmdstat_hello",
    "cmdstat_subscribe",  # the notifier's one subscription, made once at start-up
)


def commands_seen(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name: fields["calls"]
        for name, fields in stats.items()
        if not name.startswith(_NOT_PER_REQUEST)
    }
