"""The webhook scenario's receiver hands each delivery to the user waiting for it, and drops the
ones no user claims once they are old enough. It runs in its own Python process: importing
Locust patches the standard library with gevent, which the test process must not have."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.locust

SCRIPT = textwrap.dedent(
    """
    from locust.env import Environment  # first: it patches the standard library with gevent

    import json
    import time

    import requests

    from loadtests import webhooks

    hooks = webhooks.Receiver(Environment())
    HEADERS = {"webhook-id": "msg_x", "webhook-timestamp": "1", "webhook-signature": "v1,x"}
    seen = {}

    def deliver(prediction_id):
        data = {"prediction_id": prediction_id, "status": "succeeded"}
        event = {"type": "prediction.completed", "data": data}
        answer = requests.post(hooks.url, data=json.dumps(event), headers=HEADERS)
        assert answer.status_code == 204, answer.status_code

    def kept():
        return {"waiting": sorted(hooks.waiting), "unclaimed": sorted(hooks.unclaimed)}

    deliver("early")  # before its submit's answer: kept for its user
    seen["early_kept"] = kept()
    seen["early"] = hooks.wait("early", 0).data["prediction_id"]
    seen["late_wait"] = hooks.wait("late", 0.01)
    deliver("late")  # after its user gave up
    deliver("early")  # again, after its user had it
    seen["late_kept"] = kept()
    webhooks.UNCLAIMED_S = 0.05  # a minute at least, in a run
    time.sleep(0.1)
    deliver("new")
    seen["after"] = kept()
    hooks.stop()
    print(json.dumps(seen))
    """
)


def test_unclaimed_deliveries_are_kept_for_their_user_then_dropped() -> None:
    env = {name: value for name, value in os.environ.items() if name != "WEBHOOK_SECRET"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["early_kept"] == {"waiting": [], "unclaimed": ["early"]}
    assert seen["early"] == "early"
    assert seen["late_wait"] is None
    assert seen["late_kept"] == {"waiting": [], "unclaimed": ["early", "late"]}
    assert seen["after"] == {"waiting": [], "unclaimed": ["new"]}
