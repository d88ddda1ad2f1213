"""Every Redis key and channel the service reads or writes is named here, and nowhere else."""

import hashlib
from uuid import UUID

# The consumer group on the job stream that every worker, in any process or host, joins.
GROUP = "workers"


class Keys:
    """Names under one prefix, so that several deployments can share a Redis."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.stream = f"{prefix}stream"  # the job stream (durable queue)
        self.dead_letters = f"{prefix}dead"  # jobs that used up MAX_ATTEMPTS
        self.backlog = f"{prefix}backlog"  # accepted jobs not yet final (admission control)
        self.completed = f"{prefix}completed"  # jobs made final, ever (completion rate)
        self.done_channel = f"{prefix}done"  # pub/sub: ids of jobs just made final

    def job(self, prediction_id: UUID | str) -> str:
        # The API passes a parsed UUID, so a hostile path can never shape a key; a consumer
        # passes the id as the submit script wrote it into the stream.
        return f"{self.prefix}job:{prediction_id}"

    def idempotency(self, client_key: str, owner: str | None = None) -> str:
        # Hashed: a client's key may hold any characters and any length up to the limit.
        # Scoped to the API key that sent it, so one client cannot replay another's submit.
        scoped = client_key if owner is None else f"{owner}\0{client_key}"
        digest = hashlib.sha256(scoped.encode()).hexdigest()
        return f"{self.prefix}idem:{digest}"

    def rate_limit(self, client: str) -> str:
        # `client` is an API key's id or an address the server saw, never raw request text.
        return f"{self.prefix}rate:{client}"
