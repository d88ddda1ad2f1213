"""The job side of one process, wired from the settings in one place: the Redis clients, the
job store, the completion notifier, the async backend, the stream consumers and the webhook
dispatcher.

The API's lifespan (service/api/app.py) and the standalone worker (service/jobs/standalone.py)
both build it here; the API starts all of it, the standalone worker only its consumers.
"""

from service.jobs.backends.background import BackgroundBackend
from service.jobs.backends.base import AsyncBackend
from service.jobs.backends.stream import StreamBackend
from service.jobs.consumer import ConsumerConfig, ConsumerPool, StreamConsumer, consumer_name
from service.jobs.notifier import Notifier
from service.jobs.store import JobStore
from service.jobs.webhooks import WebhookDispatcher
from service.models.base import Model
from service.settings import Settings
from service.storage.connection import close_redis, create_redis
from service.storage.keys import Keys


class JobRuntime:
    def __init__(self, settings: Settings, model: Model, *, consumers: int) -> None:
        self.settings = settings
        # Blocking reads and the subscription hold a connection each: they use the pool.
        # The job store's commands go through the auto-pipeline when it is on.
        self.redis = create_redis(settings)
        self.fast = (
            create_redis(settings, autopipelined=True)
            if settings.redis_autopipeline
            else self.redis
        )
        cluster = settings.redis_mode == "cluster"
        self.keys = Keys(
            settings.key_prefix, shards=settings.effective_stream_shards, tagged=cluster
        )
        self.store = JobStore(
            self.fast,
            self.keys,
            settings.result_ttl_s,
            stream_maxlen=settings.effective_stream_maxlen,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
            sharded_pubsub=cluster,
        )
        self.notifier = Notifier(
            self.redis, [shard.done_channel for shard in self.keys.shards], sharded=cluster
        )
        self.backend: AsyncBackend
        if settings.async_backend == "background":
            self.backend = BackgroundBackend(self.store, model, log_inputs=settings.log_inputs)
            consumers = 0
        else:
            sample_every_s = settings.queue_sample_s if settings.metrics_enabled else 0
            # Admission is per shard (one atomic check in the shard's slot): each takes its
            # share of MAX_QUEUE.
            per_shard = -(-settings.max_queue // len(self.keys.shards))
            self.backend = StreamBackend(self.store, per_shard, sample_every_s)
        config = ConsumerConfig.from_settings(settings)
        self.consumers = ConsumerPool(
            [
                StreamConsumer(
                    self.redis,
                    self.store,
                    shard,
                    model,
                    config,
                    consumer_name(i),
                    on_final=self.notifier.made_final,
                )
                for shard in self.keys.shards
                for i in range(consumers)
            ]
        )

        # Webhook deliveries, in every process that has a secret (API and standalone worker).
        self.webhooks = (
            WebhookDispatcher(self.redis, self.keys.shards, settings, consumer_name(0))
            if settings.webhook_secret and settings.webhook_concurrency > 0
            else None
        )

    def start(self, *, serving: bool = True) -> None:
        """Start the consumers and, in a process that serves requests, the notifier its
        waiters need and the backend (the queue sampler)."""
        if serving:
            self.notifier.start()
            self.backend.start()
        self.consumers.start()
        if self.webhooks is not None:
            self.webhooks.start()

    async def close(self) -> None:
        """The backend first, then the consumers (their in-flight batches finish within
        GRACEFUL_TIMEOUT_S), the notifier, and the connections last: nothing still running
        finds Redis closed under it."""
        await self.backend.close()
        if self.webhooks is not None:
            self.webhooks.stop()  # its readers end while the consumers finish
        await self.consumers.stop(self.settings.graceful_timeout_s)
        if self.webhooks is not None:
            await self.webhooks.close()
        await self.notifier.close()
        await close_redis(self.redis)
        if self.fast is not self.redis:
            await close_redis(self.fast)
