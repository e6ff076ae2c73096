"""``ClusterNode.close()`` returns even when the cancellation of its sweeper lands inside a
Redis command and comes out as a connection error (redis 5.0.0 does this), which the sweep
loop survives by design: the loop also stops on the node's own flag."""

from __future__ import annotations

import asyncio

from signaling.cluster.model import ClusterUnavailable

from .nodes import start_node


async def test_close_returns_when_a_cancelled_sweep_comes_out_as_a_connection_error(
        redis_url: str) -> None:
    node = await start_node(redis_url, "node-close")
    entered = asyncio.Event()

    async def sweep_cancelled_into_an_error() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)  # a Redis command that the cancellation lands in
        except asyncio.CancelledError:
            raise ClusterUnavailable("Connection closed by server.") from None

    node.cluster.bridge.sweep = sweep_cancelled_into_an_error  # type: ignore[method-assign]
    await asyncio.wait_for(entered.wait(), 10)
    closing = asyncio.create_task(node.close())
    done, _ = await asyncio.wait({closing}, timeout=10)
    if not done:  # the bug: the loop swallowed the cancellation and sweeps again, for ever
        async def end_the_loop() -> None:
            raise asyncio.CancelledError

        node.cluster.bridge.sweep = end_the_loop  # type: ignore[method-assign]
        assert node.cluster._sweeper is not None
        node.cluster._sweeper.cancel()  # out of the long "command", into end_the_loop
        await asyncio.wait({closing}, timeout=10)
    assert done, "close() did not return: the sweeper survived its cancellation"
    assert node.cluster._sweeper is not None and node.cluster._sweeper.done()
