"""The sharded keyspace: a job id names its shard's slot, and every key of a shard (and of
its jobs) hashes to that slot, by Redis's own CRC16."""

import uuid

from redis.crc import key_slot

from service.storage.keys import SLOTS, Keys


def test_single_redis_names_stay_untagged() -> None:
    keys = Keys("pred:")
    job_id = keys.new_job_id(keys.shard_for())
    assert keys.stream == "pred:stream"
    assert keys.job(job_id) == f"pred:job:{job_id}"
    assert keys.shard_of(uuid.uuid4()) is keys.shards[0]  # any id: there is one shard


def test_every_key_of_a_job_hashes_to_its_shard_s_slot() -> None:
    keys = Keys("pred:", shards=3, tagged=True)
    for shard in keys.shards:
        for name in (shard.stream, shard.backlog, shard.completed, shard.dead_letters):
            assert key_slot(name.encode()) == shard.slot
        assert key_slot(shard.done_channel.encode()) == shard.slot
        for _ in range(50):
            job_id = keys.new_job_id(shard)
            assert job_id.version == 4
            assert keys.shard_of(job_id) is shard
            assert keys.shard_of(str(job_id)) is shard
            assert key_slot(keys.job(job_id).encode()) == shard.slot
            digest = keys.idempotency_digest("order-1", "owner")
            assert key_slot(keys.idempotency(digest, shard).encode()) == shard.slot


def test_shards_spread_over_the_primaries_of_an_even_cluster() -> None:
    """`redis-cli --cluster create` gives each of N primaries one contiguous Nth of the
    slots: the shards' slots fall one per primary."""
    for primaries in (3, 4, 6):
        keys = Keys("pred:", shards=primaries, tagged=True)
        owners = [shard.slot * primaries // SLOTS for shard in keys.shards]
        assert owners == list(range(primaries))


def test_an_idempotency_key_always_names_the_same_shard() -> None:
    keys = Keys("pred:", shards=5, tagged=True)
    digest = keys.idempotency_digest("order-42", None)
    assert len({keys.shard_for(digest).index for _ in range(20)}) == 1
    assert keys.idempotency_digest("order-42", "a") != keys.idempotency_digest("order-42", "b")


def test_any_uuid_names_a_key_but_only_current_shards_own_one() -> None:
    keys = Keys("pred:", shards=3, tagged=True)
    stranger = uuid.UUID(int=(uuid.uuid4().int & ~(SLOTS - 1)) | 5)  # slot 5: no shard's
    assert keys.shard_of(stranger) is None
    assert key_slot(keys.job(stranger).encode()) == 5  # a poll still finds where it would be
