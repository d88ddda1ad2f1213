"""The `wait` preference of RFC 7240 (`Prefer: wait=5`), as a sync-with-fallback request."""

from service.request_headers import HeaderLookup


def preferred_wait_s(headers: HeaderLookup, max_wait_s: float) -> float | None:
    """Seconds the client will wait for the result, capped at MAX_WAIT_S; None if it did not
    ask. Unknown or malformed preferences are ignored, as RFC 7240 asks."""
    for value in headers.getlist("prefer"):
        for preference in value.split(","):
            name, _, raw = preference.split(";")[0].strip().partition("=")
            if name.strip().lower() != "wait":
                continue
            try:
                seconds = float(raw.strip().strip('"'))
            except ValueError:
                return None
            if seconds != seconds or seconds < 0:  # NaN or negative
                return None
            return min(seconds, max_wait_s)
    return None
