"""The Lua scripts: each multi-key step of a job's life (and the rate limit) is one atomic
round trip. Each lives in `lua/<name>.lua`, whose opening comment is its KEYS/ARGV contract.

`redis.replicate_commands()` in a script lets Redis 6.2 run XADD with an auto id after reads
(it is the default, and a no-op, from Redis 7).
"""

from importlib.resources import files
from typing import Final


def _script(name: str, *library: str) -> str:
    """`lua/<name>.lua`, after the `library` pieces it calls (Lua has no import in a script)."""
    return "".join(
        (files(__package__) / "lua" / f"{part}.lua").read_text(encoding="utf-8")
        for part in (*library, name)
    )


SUBMIT: Final = _script("submit")
MARK_RUNNING: Final = _script("mark_running", "queue_webhook")
FINISH_BATCH: Final = _script("finish_batch", "queue_webhook")
FORGET_IDLE_CONSUMERS: Final = _script("forget_idle_consumers")
SAMPLE_QUEUE: Final = _script("sample_queue")
RATE_LIMIT: Final = _script("rate_limit")
CANCEL: Final = _script("cancel", "queue_webhook")
FINISH_JOB: Final = _script("finish_job")
WATCH_JOB: Final = _script("watch_job")
WEBHOOK_SETTLE: Final = _script("webhook_settle")
WEBHOOK_DUE: Final = _script("webhook_due")
