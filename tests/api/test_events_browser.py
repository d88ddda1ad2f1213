"""GET /predict/{id}/events in a real browser: headless Chromium's EventSource, on a page of
another origin that CORS_ALLOW_ORIGINS allows, receives a job's states and its result."""

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.server.embedded_redis import EmbeddedRedis
from tests.support.served import serve
from tests.support.tools import CHROMIUM_FLAGS, require

pytestmark = [pytest.mark.served, pytest.mark.browser]

# Submits two jobs (the second waits for the first, queued) and follows the second's events
# with an EventSource, which is left to itself: after the final event it reconnects with
# Last-Event-ID, is answered 204, and stops.
PAGE = """<!doctype html>
<meta charset="utf-8">
<script>
window.received = [];
window.ended = false;
const api = new URLSearchParams(location.search).get("api");

async function submit() {
  const answer = await fetch(`${api}/predict`, {
    method: "POST",
    headers: {"Content-Type": "application/json", "Async-Mode": "true"},
    body: JSON.stringify({input: "x"}),
  });
  return (await answer.json()).prediction_id;
}

(async () => {
  await submit();
  window.predictionId = await submit();
  const source = new EventSource(`${api}/predict/${window.predictionId}/events`);
  for (const name of ["queued", "running", "succeeded", "failed", "expired", "canceled"]) {
    source.addEventListener(name, (event) => {
      window.received.push({event: event.type, id: event.lastEventId, data: event.data});
    });
  }
  source.onerror = () => { window.ended = source.readyState === EventSource.CLOSED; };
})();
</script>
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_origin(tmp_path: Path) -> Iterator[str]:
    """The page, served from an origin of its own (another port)."""
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text(PAGE)
    handler = partial(QuietHandler, directory=str(tmp_path / "page"))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


def test_an_event_source_on_an_allowed_origin_receives_the_result(
    tmp_path: Path, redis_server: EmbeddedRedis, page_origin: str
) -> None:
    from playwright.sync_api import sync_playwright

    executable = require("chromium", "chromium")
    env = {
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": "sse-browser:",
        "CORS_ALLOW_ORIGINS": page_origin,
        "MOCK_LATENCY_MS": "500",
        "WORKER_CONCURRENCY": "1",
    }
    with serve(env, tmp_path) as api:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(f"{page_origin}/index.html?api={api.url}")
            page.wait_for_function("window.ended", timeout=20_000)
            received, prediction_id = page.evaluate("[window.received, window.predictionId]")
            browser.close()
        poll = httpx.get(f"{api.url}/predict/{prediction_id}")
        events_url = f"{api.url}/predict/{prediction_id}/events"
        # The CORS headers the browser relied on, as a stream carries them.
        stream = httpx.get(events_url, headers={"Origin": page_origin})
        metrics = httpx.get(f"{api.url}/metrics").text
    assert [(e["event"], e["id"]) for e in received] == [
        ("queued", "0"),
        ("running", "1"),
        ("succeeded", "2"),
    ]
    assert json.loads(received[-1]["data"]) == poll.json()
    assert stream.status_code == 200
    assert stream.headers["access-control-allow-origin"] == page_origin
    assert stream.headers["content-type"].startswith("text/event-stream")
    # The browser's reconnect after the final event carried Last-Event-ID: 2 and got a 204.
    route = 'route="/predict/{prediction_id}/events"'
    assert f'http_requests_total{{method="GET",{route},status="204"}} 1.0' in metrics
