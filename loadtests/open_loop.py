"""Open loop: arrivals on a fixed schedule, whatever the server does, timed from when they were due.

A closed-loop user sends its next request only after the last answer, so a server that stalls
for a second is asked almost nothing during that second, and the stall shows in a handful of
samples: coordinated omission. Here, as in wrk2, each user has a schedule of arrivals at
--arrival-rate per second and a fixed number of connections (--open-loop-connections). A free
connection takes the next arrival, waits for its time if it is early, or sends at once if it is
late; latency is measured from the arrival's intended start and recorded in an HdrHistogram.
Locust's own entry ("open-loop /predict") keeps the time from sending, what a closed loop would
report; the two are printed side by side at the end. Arrivals that are due but unanswered when the
run stops are recorded with the time they had waited so far, and counted.
"""

import itertools
import time

import gevent
from gevent.pool import Group
from locust import task
from locust.env import Environment

from loadtests.base_user import PredictionUser
from loadtests.run_stats import RUN

SCENARIO = "open-loop"


class OpenLoopUser(PredictionUser):
    def __init__(self, environment: Environment) -> None:
        assert environment.parsed_options is not None
        # FastHttpUser sizes its connection pool from this attribute when it is constructed.
        self.concurrency = int(environment.parsed_options.open_loop_connections)
        super().__init__(environment)

    @task
    def arrivals(self) -> None:
        interval = 1 / float(self.options.arrival_rate)
        schedule = itertools.count()
        in_flight: dict[int, float] = {}
        start = time.perf_counter()

        def connection() -> None:
            for arrival in schedule:
                intended = start + arrival * interval
                gevent.sleep(max(0.0, intended - time.perf_counter()))
                in_flight[arrival] = intended
                self.predict_sync(SCENARIO)
                del in_flight[arrival]
                RUN.record_from_intended_start(time.perf_counter() - intended)

        connections = Group()
        for _ in range(self.concurrency):
            connections.spawn(connection)
        try:
            connections.join(raise_error=True)
        finally:
            connections.kill(block=True)
            stopped = time.perf_counter()
            due_unsent = range(next(schedule), int((stopped - start) / interval) + 1)
            waiting = [*in_flight.values(), *(start + a * interval for a in due_unsent)]
            for intended in waiting:
                RUN.record_from_intended_start(stopped - intended)
            RUN.unfinished_arrivals += len(waiting)
