"""`make locust` (the web UI) and `make loadtest` (headless): pick the target, run Locust.

The target is TARGET_URL; unset, it is the service on http://127.0.0.1:PORT, started here (as
`make run` starts it, on the embedded Redis) when nothing answers there, and stopped afterwards.
Locust's own LOCUST_* variables pass through untouched; the defaults below only fill the gaps.
"""

import base64
import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.server.process import NotReadyError, answers, running

ROOT = Path(__file__).resolve().parent.parent
USER_CLASSES = {
    "sync": "SyncUser",
    "submit-poll": "SubmitPollUser",
    "long-poll": "LongPollUser",
    "sse": "SSEUser",
    "webhook": "WebhookUser",
    "mixed": "MixedUser",
    "open-loop": "OpenLoopUser",
}
# A run of about a minute when nothing else is said; a shape decides its own users and length.
# A user's task (a submit and its polls) may finish within LOCUST_STOP_TIMEOUT when the run
# ends, rather than be cut off and counted as a failed result.
HEADLESS_DEFAULTS = {
    "LOCUST_USERS": "20",
    "LOCUST_SPAWN_RATE": "10",
    "LOCUST_RUN_TIME": "1m",
    "LOCUST_STOP_TIMEOUT": "10",
}
OPEN_LOOP_DEFAULTS = {"LOCUST_USERS": "1", "LOCUST_SPAWN_RATE": "1", "LOCUST_RUN_TIME": "1m"}

_log = logging.getLogger("loadtests.launch")


class LaunchSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, frozen=True)

    target_url: str | None = None
    port: int = Field(8080, ge=1, le=65535)
    scenario: Literal[
        "sync", "submit-poll", "long-poll", "sse", "webhook", "mixed", "open-loop"
    ] = "mixed"
    shape: Literal["", "step", "spike", "knee"] = ""
    reports_dir: Path = Path("reports")
    service_start_timeout_s: float = 60.0


def webhook_settings(settings: LaunchSettings) -> dict[str, str]:
    """What a service started here needs for the webhook scenario: webhooks allowed to the
    receiver in the Locust process, over http on 127.0.0.1, signed with WEBHOOK_SECRET (one
    made for the run when it is unset)."""
    if settings.scenario != "webhook":
        return {}
    return {
        "WEBHOOK_SECRET": os.environ.get("WEBHOOK_SECRET") or webhook_secret(),
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
    }


def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@contextmanager
def target(settings: LaunchSettings) -> Iterator[str]:
    """The URL to load: TARGET_URL, a service already on PORT, or one started for this run."""
    if settings.target_url:
        yield settings.target_url.rstrip("/")
        return
    url = f"http://127.0.0.1:{settings.port}"
    if answers(url):
        _log.info("event=target_found url=%s", url)
        yield url
        return
    log_path = settings.reports_dir / "service.log"
    webhooks = webhook_settings(settings)
    if webhooks:
        # The receiver in the Locust processes verifies with the secret of the service started
        # here (a TARGET_URL's, or one already on PORT, is WEBHOOK_SECRET as given, if any).
        os.environ["WEBHOOK_SECRET"] = webhooks["WEBHOOK_SECRET"]
    try:
        with running(
            [sys.executable, "-m", "service", "serve"],
            port=settings.port,
            log=log_path,
            env={**os.environ, "PORT": str(settings.port), **webhooks},
            cwd=ROOT,
            timeout_s=settings.service_start_timeout_s,
        ) as service:
            _log.info(
                "event=service_started url=%s pid=%d log=%s", url, service.process.pid, log_path
            )
            yield url
    except NotReadyError:
        raise SystemExit(f"the service did not become ready; see {log_path}") from None


def locust_command(settings: LaunchSettings, url: str, headless: bool) -> list[str]:
    locustfiles = ["loadtests/locustfile.py"]
    if settings.shape:
        locustfiles.append(f"loadtests/shapes/{settings.shape}.py")
    command = [str(Path(sys.executable).parent / "locust"), "-f", ",".join(locustfiles)]
    command += ["--host", url]
    if headless:
        name = "-".join(filter(None, [settings.scenario, settings.shape]))
        prefix = settings.reports_dir.resolve() / name
        command += ["--headless", "--csv", str(prefix), "--html", f"{prefix}.html"]
    return [*command, USER_CLASSES[settings.scenario]]


def locust_env(settings: LaunchSettings, headless: bool) -> dict[str, str]:
    env = dict(os.environ)
    if headless and not settings.shape:
        defaults = OPEN_LOOP_DEFAULTS if settings.scenario == "open-loop" else HEADLESS_DEFAULTS
        env = {**defaults, **env}
    if not headless:
        env.setdefault("LOCUST_WEB_HOST", "127.0.0.1")
    return env


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if argv not in (["ui"], ["headless"]):
        print("usage: python -m loadtests.launch ui|headless", file=sys.stderr)
        return 2
    headless = argv == ["headless"]
    # SIGTERM ends the run like Ctrl-C does, so that a service started here is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    settings = LaunchSettings()
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    with target(settings) as url:
        command = locust_command(settings, url, headless)
        _log.info("event=locust_start command=%s", " ".join(command))
        return subprocess.call(command, cwd=ROOT, env=locust_env(settings, headless))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
