"""JetStream transport of the split against the real NATS server: ordered, stored once per message id,
acknowledged only after handling (an unhandled message comes again), undecodable input set aside."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.msg import Msg

from tests.services import require_nats, unique_name
from tradeloop.deploy.codec import decode_upstream, encode, envelope_of, headers_for, new_origin
from tradeloop.deploy.nats_link import CorePublisher, DurableConsumer, NatsLink, StreamPublisher
from tradeloop.deploy.subjects import Subjects
from tradeloop.model.commands import CancelOrder
from tradeloop.model.identifiers import InstrumentId

IID = InstrumentId("okx", "BTC-USDT")


def cancel(n: int) -> CancelOrder:
    return CancelOrder(ts=n, strategy_id="mm", instrument_id=IID, client_order_id=f"C{n}")


@contextlib.asynccontextmanager
async def deployment() -> AsyncIterator[NatsLink]:
    link = NatsLink(require_nats(), Subjects(unique_name("tlunit")), "unit")
    await link.connect()
    try:
        await link.ensure_streams()
        yield link
    finally:
        await link.delete_streams()
        await link.close()


def run(scenario: Callable[[NatsLink], Awaitable[None]]) -> None:
    async def main() -> None:
        async with deployment() as link:
            await scenario(link)

    asyncio.run(main())


def test_published_commands_are_stored_in_order_and_a_republish_is_stored_once() -> None:
    async def scenario(link: NatsLink) -> None:
        origin = new_origin("strategy")
        publisher = StreamPublisher(link, link.subjects.commands, origin)
        publisher.start()
        try:
            for n in range(1, 6):
                assert publisher.publish(cancel(n), f"C{n}") == n
            assert await publisher.flush(5.0)
            assert (publisher.seq, publisher.acked, publisher.duplicates) == (5, 5, 0)
            # The same message again (a publisher that never heard the ack after a reconnect).
            ack = await link.js.publish(link.subjects.commands, encode(cancel(3)), headers=headers_for(origin, 3, "C3"))
            assert ack.duplicate
            info = await link.js.stream_info(link.subjects.command_stream)
            assert info.state.messages == 5
        finally:
            await publisher.stop()
        got: list[tuple[int, str]] = []

        async def handle(msg: Msg) -> None:
            env = envelope_of(msg.headers, msg.subject)
            cmd = decode_upstream(msg.data, msg.subject)
            assert isinstance(cmd, CancelOrder)
            got.append((env.seq, cmd.client_order_id))

        consumer = DurableConsumer(link, link.subjects.command_stream, link.subjects.commands, "unit", handle)
        await consumer.subscribe()
        assert await consumer.drain(5.0)
        assert got == [(n, f"C{n}") for n in range(1, 6)]
        assert await consumer.pending() == 0
        await consumer.unsubscribe()

    run(scenario)


def test_an_undecodable_message_is_set_aside_and_the_next_one_handled() -> None:
    async def scenario(link: NatsLink) -> None:
        origin = new_origin("strategy")
        await link.js.publish(link.subjects.commands, b"\xc1garbage", headers=headers_for(origin, 1))
        await link.js.publish(link.subjects.commands, encode(cancel(2)), headers={"no": "envelope"})
        await link.js.publish(link.subjects.commands, encode(cancel(3)), headers=headers_for(origin, 3))
        handled: list[str] = []

        async def handle(msg: Msg) -> None:
            envelope_of(msg.headers, msg.subject)
            cmd = decode_upstream(msg.data, msg.subject)
            assert isinstance(cmd, CancelOrder)
            handled.append(cmd.client_order_id)

        consumer = DurableConsumer(link, link.subjects.command_stream, link.subjects.commands, "unit", handle)
        await consumer.subscribe()
        assert await consumer.drain(5.0)
        assert handled == ["C3"]
        assert (consumer.delivered, consumer.rejected) == (3, 2)
        await consumer.unsubscribe()

    run(scenario)


def test_a_message_whose_handler_failed_is_delivered_again() -> None:
    async def scenario(link: NatsLink) -> None:
        origin = new_origin("strategy")
        for n in (1, 2):
            await link.js.publish(link.subjects.commands, encode(cancel(n)), headers=headers_for(origin, n))

        async def crash(msg: Msg) -> None:
            raise RuntimeError("the service died while handling this")

        subjects = link.subjects
        first = DurableConsumer(link, subjects.command_stream, subjects.commands, "unit", crash, ack_wait_s=1.0)
        await first.subscribe()
        with pytest.raises(RuntimeError, match="died"):
            await first.fetch_once(2.0)
        await first.unsubscribe()
        handled: list[str] = []

        async def handle(msg: Msg) -> None:
            cmd = decode_upstream(msg.data, msg.subject)
            assert isinstance(cmd, CancelOrder)
            handled.append(cmd.client_order_id)

        second = DurableConsumer(link, subjects.command_stream, subjects.commands, "unit", handle, ack_wait_s=1.0)
        await second.subscribe()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while len(handled) < 2 and loop.time() < deadline:
            await second.fetch_once(0.5)
        assert handled == ["C1", "C2"]  # nothing acknowledged unhandled, nothing lost
        await second.unsubscribe()

    run(scenario)


def test_streams_can_be_ensured_by_every_service_and_purged_for_a_fresh_start() -> None:
    async def scenario(link: NatsLink) -> None:
        other = NatsLink(link.url, link.subjects, "other")
        await other.connect()
        try:
            await asyncio.gather(link.ensure_streams(), other.ensure_streams())
            await link.js.publish(link.subjects.events, b"x", headers=headers_for("o-1-1", 1))
            await other.purge_streams()
            info = await link.js.stream_info(link.subjects.event_stream)
            assert info.state.messages == 0
        finally:
            await other.close()

    run(scenario)


def test_core_publisher_keeps_call_order() -> None:
    async def scenario(link: NatsLink) -> None:
        got: list[bytes] = []
        done = asyncio.Event()

        async def on_msg(msg: Msg) -> None:
            got.append(msg.data)
            if len(got) == 200:
                done.set()

        sub = await link.nc.subscribe(link.subjects.market_data(IID), cb=on_msg)
        publisher = CorePublisher(link)
        publisher.start()
        for n in range(200):
            publisher.publish(link.subjects.market_data(IID), str(n).encode())
        await asyncio.wait_for(done.wait(), 5.0)
        await publisher.stop()
        await sub.unsubscribe()
        assert got == [str(n).encode() for n in range(200)]

    run(scenario)


def test_an_unreachable_server_is_a_clear_connection_error_without_credentials() -> None:
    link = NatsLink("nats://user:s3cret@127.0.0.1:1", Subjects("x"), "unit")
    with pytest.raises(ConnectionError) as err:
        asyncio.run(link.connect(timeout_s=1.0))
    assert "nats://127.0.0.1:1" in str(err.value) and "s3cret" not in str(err.value)
