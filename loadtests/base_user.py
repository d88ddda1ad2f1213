"""What every scenario's user does: send a prediction, check the answer, wait for a result."""

import time
from dataclasses import dataclass
from typing import Any

import gevent
from locust import FastHttpUser
from locust.contrib.fasthttp import ResponseContextManager

from loadtests import webhooks
from loadtests.events import final_event
from loadtests.inputs import random_input
from loadtests.responses import (
    Poll,
    UnexpectedResponseError,
    check_accepted,
    check_poll,
    check_success,
    check_sync,
    json_object,
)
from loadtests.run_stats import RUN
from loadtests.thresholds import RESULT

# The seed's spelling, exactly as its curl example sends it (an underscore, lower case).
ASYNC_HEADER = {"async_mode": "true"}
# An event stream as it is sent: a compressed one would arrive in the compressor's blocks.
EVENT_STREAM_HEADERS = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
# A read returns this much, or what there is when the stream ends (geventhttpclient's read).
STREAM_READ_BYTES = 1024


class ResultTimeoutError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Submitted:
    prediction_id: str
    sent: Any
    started: float  # time.perf_counter() before the submit


class PredictionUser(FastHttpUser):
    """The shared behaviour; a scenario is a subclass that picks which of these its tasks run.

    Every entry's name starts with its scenario ("sync /predict"), which the thresholds use.
    """

    abstract = True

    def wait_time(self) -> float:
        return float(self.options.think_time_s)

    @property
    def options(self) -> Any:
        return self.environment.parsed_options

    def _judge(self, response: ResponseContextManager, check: Any, *args: Any) -> Any:
        """The check's value, or None with the response marked failed."""
        try:
            value = check(response.status_code, response.content, *args)
        except UnexpectedResponseError as exc:
            response.failure(str(exc))
            return None
        response.success()
        return value if value is not None else True

    def predict_sync(self, scenario: str) -> bool:
        sent = random_input(self.options.model)
        with self.client.post(
            "/predict", json={"input": sent}, name=f"{scenario} /predict", catch_response=True
        ) as response:
            return self._judge(response, check_sync, sent) is not None

    def submit(self, scenario: str, **fields: Any) -> Submitted | None:
        """POST /predict asynchronously, with `fields` beside the input; None if it failed."""
        sent = random_input(self.options.model)
        started = time.perf_counter()
        with self.client.post(
            "/predict",
            json={"input": sent, **fields},
            headers=ASYNC_HEADER,
            name=f"{scenario} /predict",
            catch_response=True,
        ) as response:
            prediction_id = self._judge(response, check_accepted, response.headers.get("location"))
        return None if prediction_id is None else Submitted(prediction_id, sent, started)

    def record_result(
        self,
        scenario: str,
        submitted: Submitted,
        error: Exception | None,
        requests: int,
        finished: float | None = None,
    ) -> None:
        """The time from the submit to the result (`finished`, or now) as the scenario's
        time-to-result entry, and, for a result, the requests it took besides the submit."""
        self.environment.events.request.fire(
            request_type=RESULT,
            name=f"{scenario} time-to-result",
            response_time=((finished or time.perf_counter()) - submitted.started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )
        if error is None:
            RUN.count_result(scenario, requests)

    def _remaining_s(self, submitted: Submitted) -> float:
        deadline = submitted.started + float(self.options.result_timeout_s)
        return max(0.0, deadline - time.perf_counter())

    def _timed_out(self) -> ResultTimeoutError:
        return ResultTimeoutError(f"no result after {self.options.result_timeout_s} s")

    def submit_and_wait(self, scenario: str, long_poll_wait_s: float | None = None) -> None:
        """Submit asynchronously, poll until the result, and record the time to it and the polls.

        With long_poll_wait_s, each poll asks the server to hold it until the result is ready
        (`?wait=`); a server that answers sooner without the result gets the normal poll
        interval before the next ask, so that it is not polled in a tight loop.
        """
        submitted = self.submit(scenario)
        if submitted is None:
            return
        prediction_id = submitted.prediction_id
        query = "" if long_poll_wait_s is None else f"?wait={long_poll_wait_s:g}"
        polls = 0
        error: Exception | None = None
        while True:
            polls += 1
            asked = time.perf_counter()
            with self.client.get(
                f"/predict/{prediction_id}{query}",
                name=f"{scenario} /predict/{{id}}",
                catch_response=True,
            ) as response:
                outcome = self._judge(response, check_poll, prediction_id, submitted.sent)
            if outcome is None:
                error = UnexpectedResponseError(f"a poll of {prediction_id} failed")
                break
            if outcome is Poll.DONE:
                break
            if not self._remaining_s(submitted):
                error = self._timed_out()
                break
            held = time.perf_counter() - asked
            if long_poll_wait_s is None or held < long_poll_wait_s:
                gevent.sleep(float(self.options.poll_interval_s))
        self.record_result(scenario, submitted, error, polls)

    def follow_events(self, scenario: str) -> None:
        """Submit asynchronously, then read GET /predict/{id}/events to its final event, whose
        data is the poll's body; record the time to it (one request besides the submit)."""
        submitted = self.submit(scenario)
        if submitted is None:
            return
        error: Exception | None = None
        with self.client.get(
            f"/predict/{submitted.prediction_id}/events",
            name=f"{scenario} /predict/{{id}}/events",
            headers=EVENT_STREAM_HEADERS,
            stream=True,
            catch_response=True,
        ) as response:
            try:
                with gevent.Timeout(self._remaining_s(submitted), self._timed_out()):
                    if response.status_code != 200:
                        raise UnexpectedResponseError(
                            f"status {response.status_code}, expected 200"
                        )
                    chunks = response.iter_content(STREAM_READ_BYTES, decode_content=False)
                    final = final_event(chunks)
                check_success(json_object(final.data), submitted.prediction_id, submitted.sent)
            except (UnexpectedResponseError, ResultTimeoutError, OSError) as exc:
                error = exc
                response.failure(str(exc))
            else:
                response.success()
        self.record_result(scenario, submitted, error, 1)

    def await_webhook(self, scenario: str) -> None:
        """Submit asynchronously with a webhook to this process's receiver, and record the time
        to the delivery's arrival there (the deliveries are counted by the receiver)."""
        hooks = webhooks.receiver()
        submitted = self.submit(scenario, webhook=hooks.url, webhook_events_filter=["completed"])
        if submitted is None:
            return
        delivery = hooks.wait(submitted.prediction_id, self._remaining_s(submitted))
        error: Exception | None = None
        if delivery is None:
            error = self._timed_out()
        else:
            try:
                check_success(delivery.data, submitted.prediction_id, submitted.sent)
            except UnexpectedResponseError as exc:
                error = exc
        self.record_result(
            scenario, submitted, error, 0, delivery.arrived if delivery is not None else None
        )
