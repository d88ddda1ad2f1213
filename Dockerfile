# syntax=docker/dockerfile:1

# Build stage: the locked dependencies into a virtualenv, and the iris model artifact.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY service/ service/
RUN /opt/venv/bin/python -m service train-iris artifacts/iris.joblib

# Load generator stage (docker-compose's locust-master and locust-worker): Locust and the
# load tests only, non-root. `docker build --target loadtest`.
FROM python:3.11-slim-bookworm AS loadtest
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app
WORKDIR /app
COPY requirements-loadtest.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements-loadtest.lock
COPY --chown=app:app loadtests/ loadtests/
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8089 5557
CMD ["locust", "-f", "loadtests/locustfile.py"]

# Runtime stage: no compilers, no pip cache, a non-root user.
FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=app:app /app/artifacts artifacts/
COPY --chown=app:app service/ service/
RUN mkdir -p /app/.data && chown app:app /app/.data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/app/.data
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/healthz\", timeout=2)"]
# gunicorn handles SIGTERM gracefully (GRACEFUL_TIMEOUT_S): exec form, and `serve` replaces
# itself with gunicorn, so that its master is the process that receives it.
CMD ["python", "-m", "service", "serve"]
