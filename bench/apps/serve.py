"""An ASGI app under plain uvicorn (uvloop, httptools) on PORT, with WEB_CONCURRENCY workers:
how the reference builds are served, and how `make bench-instructions` serves each build.

    python -m bench.apps.serve MODULE:APP [--factory] [--service-protocol]

`--service-protocol` gives uvicorn what the service's gunicorn worker gives it
(service/server/uvicorn_worker.py): the HTTP protocol that enforces the request-head limits,
and no Server header.
"""

import argparse
import os

import uvicorn

from service.server.http_protocol import HeadLimits, service_protocol


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apps.serve")
    parser.add_argument("app", help="MODULE:APP (or MODULE:FACTORY with --factory)")
    parser.add_argument("--factory", action="store_true")
    parser.add_argument("--service-protocol", action="store_true")
    args = parser.parse_args(argv)
    uvicorn.run(
        args.app,
        factory=args.factory,
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        loop="uvloop",
        http=service_protocol(HeadLimits()) if args.service_protocol else "httptools",
        log_level="warning",
        access_log=False,
        server_header=not args.service_protocol,
    )


if __name__ == "__main__":
    main()
