"""choose_node: the least loaded live node that can take a room, the same answer everywhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from signaling.cluster import NodeInfo, NodeLoad, choose_node


def node(node_id: str, rooms: int = 0, capacity: int = 10, members: int = 0,
         cpu: float = 0.0, draining: bool = False) -> tuple[NodeInfo, NodeLoad]:
    return NodeInfo(node_id, draining=draining), NodeLoad(rooms, members, cpu, capacity)


def test_nothing_to_choose_from() -> None:
    assert choose_node([]) is None
    assert choose_node([node("a", draining=True), node("b", rooms=10), node("c", capacity=0)]
                       ) is None
    assert choose_node([node("a")], exclude={"a"}) is None


def test_the_smallest_share_of_capacity_wins() -> None:
    assert choose_node([node("a", rooms=5), node("b", rooms=4)]) == "b"
    # 5 of 100 is less busy than 2 of 10, although it has more rooms
    assert choose_node([node("a", rooms=5, capacity=100), node("b", rooms=2)]) == "a"


def test_ties_go_to_fewer_members_then_less_cpu_then_the_id() -> None:
    assert choose_node([node("a", 1, members=9), node("b", 1, members=3)]) == "b"
    assert choose_node([node("a", 1, cpu=50.0), node("b", 1, cpu=20.0)]) == "b"
    assert choose_node([node("b", 1), node("a", 1), node("c", 1)]) == "a"


def test_draining_full_and_excluded_nodes_are_skipped() -> None:
    nodes = [node("a", draining=True), node("b", rooms=10), node("c", rooms=9), node("d", 5)]
    assert choose_node(nodes) == "d"
    assert choose_node(nodes, exclude=("d",)) == "c"


NODES = st.lists(
    st.builds(node, st.from_regex(r"[a-f]{1,2}", fullmatch=True), st.integers(0, 12),
              st.integers(0, 12), st.integers(0, 60), st.floats(0, 400), st.booleans()),
    max_size=8, unique_by=lambda pair: pair[0].id)


@given(NODES, st.sets(st.sampled_from("abcdef")))
def test_the_choice_can_take_a_room_and_is_the_same_in_any_order(
        nodes: list[tuple[NodeInfo, NodeLoad]], exclude: set[str]) -> None:
    chosen = choose_node(nodes, exclude)
    eligible = [(i, load) for i, load in nodes
                if not i.draining and i.id not in exclude and load.rooms < load.capacity_rooms]
    assert (chosen is None) == (not eligible)
    assert chosen is None or chosen in {i.id for i, _ in eligible}
    assert choose_node(list(reversed(nodes)), exclude) == chosen
