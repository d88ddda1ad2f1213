"""What every scenario's user does: send a prediction, check the answer, wait for a result."""

import time
from typing import Any

import gevent
from locust import FastHttpUser
from locust.contrib.fasthttp import ResponseContextManager

from loadtests.inputs import random_input
from loadtests.responses import (
    Poll,
    UnexpectedResponseError,
    check_accepted,
    check_poll,
    check_sync,
)
from loadtests.run_stats import RUN
from loadtests.thresholds import RESULT

# The seed's spelling, exactly as its curl example sends it (an underscore, lower case).
ASYNC_HEADER = {"async_mode": "true"}


class ResultTimeoutError(Exception):
    pass


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

    def submit_and_wait(self, scenario: str, long_poll_wait_s: float | None = None) -> None:
        """Submit asynchronously, poll until the result, and record the time to it and the polls.

        With long_poll_wait_s, each poll asks the server to hold it until the result is ready
        (`?wait=`); a server that answers sooner without the result gets the normal poll
        interval before the next ask, so that it is not polled in a tight loop.
        """
        sent = random_input(self.options.model)
        started = time.perf_counter()
        with self.client.post(
            "/predict",
            json={"input": sent},
            headers=ASYNC_HEADER,
            name=f"{scenario} /predict",
            catch_response=True,
        ) as response:
            prediction_id = self._judge(response, check_accepted, response.headers.get("location"))
        if prediction_id is None:
            return
        query = "" if long_poll_wait_s is None else f"?wait={long_poll_wait_s:g}"
        deadline = started + float(self.options.result_timeout_s)
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
                outcome = self._judge(response, check_poll, prediction_id, sent)
            if outcome is None:
                error = UnexpectedResponseError(f"a poll of {prediction_id} failed")
                break
            if outcome is Poll.DONE:
                break
            if time.perf_counter() >= deadline:
                error = ResultTimeoutError(f"no result after {self.options.result_timeout_s} s")
                break
            held = time.perf_counter() - asked
            if long_poll_wait_s is None or held < long_poll_wait_s:
                gevent.sleep(float(self.options.poll_interval_s))
        self.environment.events.request.fire(
            request_type=RESULT,
            name=f"{scenario} time-to-result",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=error,
            context={},
        )
        if error is None:
            RUN.count_result(scenario, polls)
