"""REDIS_WAIT_REPLICAS: a submit is answered 202 only once that many replicas have it, and one
WAIT covers every submit of an auto-pipelined write. Against real Redis processes: the
session's Cluster (each primary has a replica) and its single Redis (none)."""

import asyncio
from collections.abc import Callable

import pytest
import redis
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster

from service.server.redis_topology import LocalCluster
from service.storage.keys import Keys
from tests.support.apps import in_app, services_of
from tests.support.http import ASYNC, BODY


@pytest.mark.parametrize("topology", ["cluster"])
def test_on_a_cluster_a_submit_is_202_once_its_replica_has_it(
    topology: str,
    make_client: Callable[..., TestClient],
    redis_cluster: LocalCluster,
    keys: Keys,
) -> None:
    client = make_client(worker_concurrency=0, redis_wait_replicas=1)
    accepted = client.post("/predict", json=BODY, headers=ASYNC)
    assert accepted.status_code == 202, accepted.text
    job_key = keys.job(accepted.json()["prediction_id"])
    held = []
    for replica in redis_cluster.replicas():
        with redis_cluster.client(replica) as direct:
            direct.execute_command("READONLY")  # a replica answers reads of its own slots
            try:
                held.append(direct.hget(job_key, "status"))
            except redis.ResponseError:  # MOVED: another primary's slot
                continue
    assert held == ["queued"]  # (the topology's clients decode)


@pytest.mark.parametrize("topology", ["cluster"])
def test_one_wait_covers_the_submits_of_one_write(
    topology: str, make_client: Callable[..., TestClient], redis_client: RedisCluster
) -> None:
    client = make_client(worker_concurrency=0, redis_wait_replicas=1)
    store = services_of(client).store
    for _ in range(10):  # the slot map read, and a connection open to each primary
        assert client.post("/predict", json=BODY, headers=ASYNC).status_code == 202
    redis_client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)

    async def submit_many() -> list[str]:
        ids = [store.new_job_id() for _ in range(60)]
        admissions = await asyncio.gather(
            *(store.submit(job_id, b'"x"', enqueue=True) for job_id in ids)
        )
        return [admission.verdict for admission in admissions]

    assert in_app(client, submit_many) == ["ok"] * 60
    stats = redis_client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
    waits = sum(node.get("cmdstat_wait", {}).get("calls", 0) for node in stats.values())
    # 60 submits in one event-loop iteration: one write, so one WAIT, per primary.
    assert waits == 3


def test_with_no_replica_to_confirm_a_submit_is_503_never_202(
    make_client: Callable[..., TestClient], redis_client: redis.Redis
) -> None:
    client = make_client(worker_concurrency=0, redis_wait_replicas=1, redis_wait_timeout_ms=20)
    refused = client.post("/predict", json=BODY, headers=ASYNC)
    assert refused.status_code == 503
    assert "retry-after" in refused.headers
