"""The load tests, for `locust -f loadtests/locustfile.py [SyncUser|SubmitPollUser|...]`.

Add a shape with a second file: `-f loadtests/locustfile.py,loadtests/shapes/step.py`.
`make locust` and `make loadtest` (loadtests/launch.py) put these together.
"""

from loadtests import (  # noqa: F401 - they register listeners
    generator_cpu,
    options,
    prometheus_export,
    verdict,
    webhooks,
)
from loadtests.open_loop import OpenLoopUser
from loadtests.scenarios import (
    LongPollUser,
    MixedUser,
    SSEUser,
    SubmitPollUser,
    SyncUser,
    WebhookUser,
)

__all__ = [
    "LongPollUser",
    "MixedUser",
    "OpenLoopUser",
    "SSEUser",
    "SubmitPollUser",
    "SyncUser",
    "WebhookUser",
]
