"""RedisStore against fakeredis and a real redis-server (the same bodies, ``stores`` fixture):
registration and liveness, placement and its race, the Lua scripts' rules, junk in Redis."""

from __future__ import annotations

import asyncio

import pytest

from signaling.cluster import (ClusterDataError, ClusterUnavailable, NodeInfo, NodeLoad,
                               NoNodeAvailable, RedisStore, RoomRecord)

from .helpers import DEADLINE, MakeStore, eventually, registered

KEY = bytes(range(32))


async def raw(store: RedisStore) -> object:
    """The store's client, for writing what a walkie node never writes."""
    return store._redis


# -- nodes: registration, liveness, listing ----------------------------------------------------

async def test_a_registered_node_is_live_and_listed(stores: MakeStore) -> None:
    a = await stores("node-a", node_ttl=60.0)
    observer = await stores(None)
    assert await observer.nodes() == [] and await observer.alive(["node-a"]) == set()
    a.node = NodeInfo("node-a", "https://a.example.org", (("127.0.0.1", 40000),),
                      started_at=1700000000.5)
    await a.beat(NodeLoad(rooms=7, members=12, cpu_percent=3.5, capacity_rooms=100))
    [(info, load)] = await observer.nodes()
    assert info == a.node
    # rooms: what the node owns in Redis now, not what it reported (none yet)
    assert load == NodeLoad(rooms=0, members=12, cpu_percent=3.5, capacity_rooms=100)
    assert await observer.alive(["node-a", "node-b"]) == {"node-a"}


async def test_close_removes_the_node_at_once(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    b = await registered(stores, "node-b")
    await a.close()
    assert await b.alive(["node-a", "node-b"]) == {"node-b"}
    assert [info.id for info, _ in await b.nodes()] == ["node-b"]


async def test_a_silent_node_expires_and_is_pruned(stores: MakeStore) -> None:
    a = await stores("node-a", heartbeat=0.1, node_ttl=0.3)
    b = await registered(stores, "node-b")
    a.start_heartbeat(lambda: NodeLoad(members=5, capacity_rooms=3))

    async def a_listed_with_its_load() -> bool:
        return any(info.id == "node-a" and load.members == 5 for info, load in await b.nodes())

    await eventually(a_listed_with_its_load, "node-a's heartbeat is seen by node-b")
    await a.stop_heartbeat()  # as if node-a were killed

    async def a_dead() -> bool:
        return await b.alive(["node-a"]) == set()

    await eventually(a_dead, "node-a's record expires after node_ttl")
    assert [info.id for info, _ in await b.nodes()] == ["node-b"]
    assert await (await raw(b)).smembers("walkie:nodes") == {b"node-b"}  # pruned


async def test_a_failing_load_probe_does_not_stop_the_heartbeat(stores: MakeStore) -> None:
    a = await stores("node-a", heartbeat=0.05, node_ttl=0.5)
    observer = await stores(None)
    calls: list[int] = []

    def load() -> NodeLoad:
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("the probe broke")
        return NodeLoad(members=len(calls), capacity_rooms=1)

    a.start_heartbeat(load)

    async def later_loads_seen() -> bool:
        return any(load.members >= 6 for _, load in await observer.nodes())

    await eventually(later_loads_seen, "the beats go on after a failing load()")
    with pytest.raises(RuntimeError):
        a.start_heartbeat(load)  # one heartbeat per store


async def test_stopping_the_heartbeat_survives_a_swallowed_cancellation(
        stores: MakeStore) -> None:
    """A Redis client may turn a cancellation that lands inside a command into a connection
    error (redis 5.0.0 did, under load): the heartbeat must stop all the same."""
    a = await stores("node-a", heartbeat=0.05, node_ttl=0.5)
    writing = asyncio.Event()
    swallowed: list[bool] = []

    async def swallowing_beat(load: NodeLoad | None = None) -> None:
        writing.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)  # once: the test's teardown can still end the task
            raise ClusterUnavailable("the client made this of the cancellation") from None

    a.beat = swallowing_beat  # type: ignore[method-assign]
    a.start_heartbeat(lambda: NodeLoad())
    await writing.wait()
    stopping = asyncio.create_task(a.stop_heartbeat())
    done, _ = await asyncio.wait({stopping}, timeout=DEADLINE)  # a bound, not a timing
    assert stopping in done, "the heartbeat goes on after stop_heartbeat()"


async def test_draining_nodes_get_no_new_rooms(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    b = await registered(stores, "node-b")
    await a.set_draining(True)
    listed = {info.id: info.draining for info, _ in await b.nodes()}
    assert listed == {"node-a": True, "node-b": False}
    assert (await a.place("r1")).owner == "node-b"
    await b.set_draining(True)
    with pytest.raises(NoNodeAvailable):
        await a.place("r2")


async def test_placement_fills_the_least_loaded_node(stores: MakeStore) -> None:
    a = await registered(stores, "node-a", capacity=2)
    await registered(stores, "node-b", capacity=2)
    owners = [(await a.place(f"room-{i}")).owner for i in range(4)]
    assert owners == ["node-a", "node-b", "node-a", "node-b"]  # claims count at once
    with pytest.raises(NoNodeAvailable, match="no live node can take room room-9"):
        await a.place("room-9")  # both full
    assert await a.rooms_of("node-a") == {"room-0", "room-2"}


async def test_no_node_no_placement(stores: MakeStore) -> None:
    observer = await stores(None)
    with pytest.raises(NoNodeAvailable):
        await observer.place("lobby")
    with pytest.raises(NoNodeAvailable, match="node node-x is not live"):
        await observer.claim("lobby", "node-x")
    assert await observer.room("lobby") is None


# -- the placement race and claims ------------------------------------------------------------

async def test_concurrent_first_joins_through_three_nodes_agree_on_one_owner(
        stores: MakeStore) -> None:
    nodes = [await registered(stores, f"node-{n}", capacity=100) for n in "abc"]
    results = await asyncio.gather(*(nodes[i % 3].place("lobby") for i in range(50)))
    assert len({r.owner for r in results}) == 1
    assert {r.epoch for r in results} == {1}
    owner = results[0].owner
    assert await nodes[0].room("lobby") == results[0]
    owned = {n.node.id: await n.rooms_of(n.node.id) for n in nodes}
    assert owned == {n: ({"lobby"} if n == owner else set()) for n in owned}


async def test_concurrent_claims_by_different_candidates_agree(stores: MakeStore) -> None:
    nodes = [await registered(stores, f"node-{n}") for n in "abc"]
    results = await asyncio.gather(
        *(nodes[i % 3].claim("lobby", nodes[i % 3].node.id) for i in range(30)))
    assert len(set(results)) == 1 and results[0].epoch == 1


async def test_a_live_owner_keeps_its_room(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    b = await registered(stores, "node-b")
    first = await a.claim("lobby", "node-a")
    assert first.owner == "node-a" and first.epoch == 1 and first.password_key is None
    assert await b.claim("lobby", "node-b") == first
    assert await b.place("lobby") == first


async def test_a_dead_owners_room_is_claimed_again_with_its_password_key(
        stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    b = await registered(stores, "node-b")
    c = await registered(stores, "node-c")
    first = await a.claim("lobby", "node-a")
    assert await a.set_password_key("lobby", "node-a", KEY)
    await a.close()  # node-a is gone (a crash looks the same after node_ttl)
    again = await b.claim("lobby", "node-b")
    assert again == RoomRecord("lobby", "node-b", 2, first.created, KEY)
    assert await c.claim("lobby", "node-c") == again  # re-claimed once only
    assert await b.rooms_of("node-a") == set() and await b.rooms_of("node-b") == {"lobby"}


async def test_place_takes_over_a_dead_owners_room(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    b = await registered(stores, "node-b")
    await a.claim("lobby", "node-a")
    await a.set_draining(True)
    await a.close()
    record = await b.place("lobby")
    assert (record.owner, record.epoch) == ("node-b", 2)


# -- move, release, password key ------------------------------------------------------------

async def test_move_is_a_compare_and_set_on_owner_and_epoch(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    await registered(stores, "node-b")
    first = await a.claim("lobby", "node-a")
    assert await a.move("lobby", "node-a", "node-b", first.epoch + 1) is None  # wrong epoch
    assert await a.move("lobby", "node-b", "node-a", first.epoch) is None  # not the owner
    assert await a.move("lobby", "node-a", "node-gone", first.epoch) is None  # not live
    assert await a.move("nowhere", "node-a", "node-b", 1) is None
    moved = await a.move("lobby", "node-a", "node-b", first.epoch)
    assert moved == RoomRecord("lobby", "node-b", 2, first.created)
    assert await a.move("lobby", "node-a", "node-b", first.epoch) is None  # stale now
    assert await a.rooms_of("node-a") == set() and await a.rooms_of("node-b") == {"lobby"}
    with pytest.raises(ValueError):
        await a.move("lobby", "node-b", "node-b", 2)


async def test_release_only_by_the_owner(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    b = await registered(stores, "node-b")
    await a.claim("lobby", "node-a")
    assert not await b.release("lobby", "node-b")
    assert await a.room("lobby") is not None
    assert await a.release("lobby", "node-a")
    assert await b.room("lobby") is None and await a.rooms_of("node-a") == set()
    assert not await a.release("lobby", "node-a")
    again = await b.claim("lobby", "node-b")
    assert again.epoch == 1 and again.password_key is None  # a new room


async def test_the_password_key_is_set_once_by_the_owner(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    await registered(stores, "node-b")
    await a.claim("lobby", "node-a")
    assert not await a.set_password_key("lobby", "node-b", KEY)
    assert not await a.set_password_key("nowhere", "node-a", KEY)
    assert await a.set_password_key("lobby", "node-a", KEY)
    assert not await a.set_password_key("lobby", "node-a", bytes(32))
    record = await a.room("lobby")
    assert record is not None and record.password_key == KEY
    with pytest.raises(ValueError):
        await a.set_password_key("lobby", "node-a", b"short")


async def test_ids_are_checked_before_they_reach_a_key(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    for call in (a.place("Lobby"), a.room("a:b"), a.claim("lobby", "node:x"),
                 a.rooms_of("*"), a.alive(["node a"]), a.release("", "node-a")):
        with pytest.raises(ValueError):
            await call


# -- junk in Redis ----------------------------------------------------------------------------

async def test_junk_node_records_are_left_out(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    client = await raw(a)
    await client.set("walkie:node:node-j", b'{"v": 1, "id": "node-j"}', px=60_000)
    await client.set("walkie:node:node-k", b"\xff\x00 not json", px=60_000)
    await client.sadd("walkie:nodes", "node-j", "node-k", "Bad Id", b"\xff")
    assert [info.id for info, _ in await a.nodes()] == ["node-a"]
    assert await a.alive(["node-j"]) == {"node-j"}  # live (its key exists), but never chosen
    assert (await a.place("lobby")).owner == "node-a"


async def test_junk_room_records_raise_cluster_data_error(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    client = await raw(a)
    await client.hset("walkie:room:junk", mapping={"owner": "node-a", "epoch": "x",
                                                    "created": "1"})
    with pytest.raises(ClusterDataError):
        await a.room("junk")
    with pytest.raises(ClusterDataError):
        await a.place("junk")  # its owner is live: the record stands, and it is junk
    await client.set("walkie:room:str", "a string, not a hash")
    with pytest.raises(ClusterDataError):
        await a.room("str")
    with pytest.raises(ClusterDataError):
        await a.claim("str", "node-a")
    await client.sadd("walkie:rooms:node-a", "Not A Room", "ok-room")
    assert await a.rooms_of("node-a") == {"ok-room"}


async def test_a_record_without_an_owner_is_claimed_afresh(stores: MakeStore) -> None:
    a = await registered(stores, "node-a")
    await (await raw(a)).hset("walkie:room:lobby", mapping={"epoch": "4", "junk": "1"})
    record = await a.place("lobby")
    assert (record.owner, record.epoch, record.password_key) == ("node-a", 5, None)


async def test_prefixes_keep_clusters_apart(stores: MakeStore) -> None:
    a = await registered(stores, "node-a", prefix="one:")
    b = await registered(stores, "node-b", prefix="two:")
    assert (await a.place("lobby")).owner == "node-a"
    assert (await b.place("lobby")).owner == "node-b"
    assert [i.id for i, _ in await a.nodes()] == ["node-a"]
