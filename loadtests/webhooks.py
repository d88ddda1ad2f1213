"""The webhook scenario's receiver: a WSGI server on 127.0.0.1 in every Locust process that runs
users (gevent's own, so it shares the users' event loop), started once by the `init` event.

A delivery is answered 204 at once. Its arrival is handed to the user that submitted the job,
matched by the `prediction_id` in its `data`, and counted (delivery is at least once: a
redelivery counts too). One that no user waits for (it came before its submit's answer, after
its user gave up, or again) is kept for the user until the result timeout has passed (at least
a minute), then dropped, so that a long run does not pile them up.

With WEBHOOK_SECRET set, the service's own, each delivery's Standard Webhooks signature is
verified; without it, the signature headers must be there. Every delivery is a Locust entry
(`webhook delivery`, type WEBHOOK), failed when it is not what the API promises.
"""

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import AsyncResult
from gevent.pywsgi import WSGIServer
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner
from standardwebhooks import Webhook, WebhookVerificationError

from loadtests.responses import UnexpectedResponseError, json_object
from loadtests.run_stats import RUN

SCENARIO = "webhook"
DELIVERY = "WEBHOOK"  # the request type of deliveries
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
UNCLAIMED_S = 60.0  # the least time a delivery no user waited for is kept


@dataclass(frozen=True, slots=True)
class Delivery:
    arrived: float  # time.perf_counter() when it arrived
    data: dict[str, Any]


class Receiver:
    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        secret = os.environ.get("WEBHOOK_SECRET")
        self.verifier = Webhook(secret) if secret else None
        self.waiting: dict[str, AsyncResult] = {}  # the users waiting, by prediction_id
        # The first delivery of each job no user waited for when it came, oldest first.
        self.unclaimed: dict[str, Delivery] = {}
        self.server = WSGIServer(("127.0.0.1", 0), self._app, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait(self, prediction_id: str, timeout_s: float) -> Delivery | None:
        """The job's first delivery, or None after timeout_s."""
        # Either side may come first: a fast job's webhook can arrive before its submit's answer.
        early = self.unclaimed.pop(prediction_id, None)
        if early is not None:
            return early
        slot = self.waiting[prediction_id] = AsyncResult()
        try:
            delivery: Delivery = slot.get(timeout=max(0.0, timeout_s))
        except gevent.Timeout:
            return None
        finally:
            del self.waiting[prediction_id]
        return delivery

    def _deliver(self, prediction_id: str, delivery: Delivery) -> None:
        slot = self.waiting.get(prediction_id)
        if slot is not None:
            if not slot.ready():
                slot.set(delivery)
            return
        self._forget_unclaimed(delivery.arrived)
        self.unclaimed.setdefault(prediction_id, delivery)

    def _forget_unclaimed(self, now: float) -> None:
        # The result timeout can change between swarms started from the web UI.
        options = self.environment.parsed_options
        keep_s = max(UNCLAIMED_S, float(getattr(options, "result_timeout_s", 0)))
        while self.unclaimed:
            prediction_id, oldest = next(iter(self.unclaimed.items()))
            if now - oldest.arrived < keep_s:
                return
            del self.unclaimed[prediction_id]

    def _app(
        self, environ: dict[str, Any], start_response: Callable[[str, list[Any]], Any]
    ) -> Iterable[bytes]:
        arrived = time.perf_counter()
        body = environ["wsgi.input"].read()
        start_response("204 No Content", [])
        headers = {
            name: environ.get("HTTP_" + name.upper().replace("-", "_"), "")
            for name in SIGNATURE_HEADERS
        }
        error: Exception | None = None
        try:
            data = self._verified(body, headers)
        except UnexpectedResponseError as exc:
            error = exc
        else:
            RUN.polls[SCENARIO] += 1
            self._deliver(str(data.get("prediction_id")), Delivery(arrived, data))
        self.environment.events.request.fire(
            request_type=DELIVERY,
            name=f"{SCENARIO} delivery",
            response_time=(time.perf_counter() - arrived) * 1000,
            response_length=len(body),
            exception=error,
            context={},
        )
        return []

    def _verified(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """The delivery's `data`: a completed event of a job, signed."""
        if not all(headers.values()):
            raise UnexpectedResponseError(
                f"a delivery without Standard Webhooks headers: {headers}"
            )
        if self.verifier is not None:
            try:
                self.verifier.verify(body, headers)
            except WebhookVerificationError as exc:
                raise UnexpectedResponseError(f"a delivery's signature: {exc}") from exc
        event = json_object(body)
        data = event.get("data")
        if event.get("type") != "prediction.completed" or not isinstance(data, dict):
            raise UnexpectedResponseError(f"not a completed event: {body[:160]!r}")
        return data

    def stop(self) -> None:
        self.server.stop(timeout=1)


_RECEIVERS: list[Receiver] = []  # the process's one receiver, once started


def receiver() -> Receiver:
    if not _RECEIVERS:
        raise RuntimeError("no webhook receiver in this process (a master runs no users)")
    return _RECEIVERS[0]


@events.init.add_listener
def _start(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, MasterRunner) and not _RECEIVERS:
        _RECEIVERS.append(Receiver(environment))


@events.quitting.add_listener
def _stop(**_: Any) -> None:
    while _RECEIVERS:
        _RECEIVERS.pop().stop()
