"""The closed-loop scenarios: each user sends, waits for the answer, pauses, and sends again."""

from locust import task

from loadtests.base_user import PredictionUser
from loadtests.webhooks import SCENARIO as WEBHOOK


class SyncUser(PredictionUser):
    """POST /predict, answered with the result."""

    @task
    def sync(self) -> None:
        self.predict_sync("sync")


class SubmitPollUser(PredictionUser):
    """POST /predict with `async_mode: true`, then GET /predict/{id} every poll interval."""

    @task
    def submit_poll(self) -> None:
        self.submit_and_wait("submit-poll")


class LongPollUser(PredictionUser):
    """As submit-poll, but each GET /predict/{id}?wait=S is held until the result is ready."""

    @task
    def long_poll(self) -> None:
        self.submit_and_wait("long-poll", float(self.options.long_poll_wait_s))


class SSEUser(PredictionUser):
    """POST /predict with `async_mode: true`, then GET /predict/{id}/events (Server-Sent Events)
    read to the final event, which carries the result."""

    @task
    def sse(self) -> None:
        self.follow_events("sse")


class WebhookUser(PredictionUser):
    """POST /predict with `async_mode: true` and a `webhook` to the receiver in this Locust
    process (loadtests/webhooks.py), then wait for the delivery. The service must allow it:
    WEBHOOK_SECRET, WEBHOOK_ALLOW_HTTP=true and WEBHOOK_ALLOW_PRIVATE=true."""

    @task
    def webhook(self) -> None:
        self.await_webhook(WEBHOOK)


class MixedUser(PredictionUser):
    """A blend weighted like a typical day: mostly sync calls, some async, a few long polls.

    The inputs follow the server's model (--model / MODEL): iris measurements for MODEL=iris.
    """

    @task(6)
    def sync(self) -> None:
        self.predict_sync("sync")

    @task(3)
    def submit_poll(self) -> None:
        self.submit_and_wait("submit-poll")

    @task(1)
    def long_poll(self) -> None:
        self.submit_and_wait("long-poll", float(self.options.long_poll_wait_s))
