"""Whether this process is draining: told to stop (SIGTERM) and serving out DRAIN_S before it
stops accepting. The server (service/server/uvicorn_worker.py) sets it; `/readyz` answers 503
and every answer closes its connection while it is set, so that a load balancer stops sending
and clients move to another process before this one closes anything."""

_draining = False


def begin_draining() -> None:
    global _draining
    _draining = True


def draining() -> bool:
    return _draining
