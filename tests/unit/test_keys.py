"""One key schema: every key under the prefix, a thread's keys in its Cluster slot."""

from redis.crc import key_slot

from memory.keys import RedisKeys


def test_a_threads_keys_share_one_slot_and_every_key_its_prefix() -> None:
    keys = RedisKeys("tenant-7")
    thread = "t-42"
    of_thread = [*keys.checkpoints(thread).all, keys.events(thread), keys.owner(thread),
                 keys.thread(thread), keys.runs(thread), keys.lease(thread)]  # fmt: skip
    assert len(set(of_thread)) == len(of_thread)
    assert {key_slot(key.encode()) for key in of_thread} == {key_slot(b"{t-42}")}
    by_owner = [keys.owner_threads("ada"), keys.owner_titles("ada")]
    assert {key_slot(key.encode()) for key in by_owner} == {key_slot(b"{ada}")}
    others = [keys.checkpoints_of_run("r-1"), keys.connections("k"), keys.limits, keys.cache,
              keys.control]  # fmt: skip
    assert all(key.startswith("tenant-7:") for key in [*of_thread, *by_owner, *others])
