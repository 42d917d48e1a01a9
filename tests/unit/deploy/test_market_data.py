"""Market data over core NATS: the market-data service publishes a venue's items in order and answers
snapshot requests from its own book; a consumer asks for snapshots at start and after a gap, and drops a
republished snapshot of a book it has at that very sequence."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from nats.aio.msg import Msg

from tests.services import require_nats, unique_name
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import LiveClock
from tradeloop.data.book_manager import BookManager, MarketDataHub
from tradeloop.data.synthetic import SyntheticMarket
from tradeloop.deploy.codec import Progress, ResyncRequest, decode, decode_market, encode
from tradeloop.deploy.market_data_service import MarketDataService, book_snapshot
from tradeloop.deploy.market_feed import NatsMarketData
from tradeloop.deploy.nats_link import NatsLink
from tradeloop.deploy.subjects import Subjects
from tradeloop.model.data import BookDeltas, BookStatus, MarketData, Trade
from tradeloop.model.enums import Side
from tradeloop.model.instrument import Instrument
from tradeloop.runtime.live_config import LiveConfig, LiveSection, LiveVenueSection
from tradeloop.runtime.simulator_feed import synthetic_config_for
from tradeloop.runtime.venue_feed import BookRules
from tradeloop.venues.connectors import get_connector
from tradeloop.venues.simulator.local import build_simulator

VENUE = "okx"


def instrument() -> Instrument:
    return get_connector(VENUE).instruments()[0]


def synthetic(inst: Instrument, n: int) -> Iterator[BookDeltas | Trade]:
    for i, (_, item) in enumerate(SyntheticMarket(synthetic_config_for([inst], seed=3))):
        if i >= n:
            return
        assert isinstance(item, BookDeltas | Trade)
        yield item


def config(inst: Instrument) -> LiveConfig:
    return LiveConfig(
        valuation=inst.quote, live=LiveSection(venues={VENUE: LiveVenueSection(symbols=[inst.id.symbol])})
    )


async def eventually(check: object, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (callable(check) and check()):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_the_service_publishes_the_venue_feed_and_answers_snapshot_requests() -> None:
    inst = instrument()
    subjects = Subjects(unique_name("tlmd"))

    async def scenario() -> None:
        sim = build_simulator(get_connector(VENUE), instruments=[inst])
        items = list(synthetic(inst, 60))
        sim.core.apply_market(items[0])  # the venue's book before the service subscribes
        await sim.start()
        service = MarketDataService(
            config(inst), NatsLink(require_nats(), subjects, "market-data"), endpoint=sim.base_url, handle_signals=False
        )
        test = NatsLink(require_nats(), subjects, "test")
        await test.connect()
        got: list[MarketData] = []

        async def on_md(msg: Msg) -> None:
            got.append(decode_market(msg.data, msg.subject))

        await test.nc.subscribe(subjects.market_data(inst.id), cb=on_md)
        running = asyncio.create_task(service.run())
        try:
            await eventually(lambda: service.ready and service.books.is_valid(inst.id))
            for item in items[1:]:
                sim.core.apply_market(item)
            await eventually(lambda: sum(type(i) is BookDeltas and not i.snapshot for i in got) >= 30)
            seqs = [i.last_seq for i in got if type(i) is BookDeltas and not i.snapshot]
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "deltas out of order"
            assert any(type(i) is Trade for i in got)
            # A consumer's request (once the service has all the venue sent): a snapshot of its book.
            venue_seq = sim.dialect.seq(inst.id.symbol)  # type: ignore[attr-defined]
            await eventually(lambda: (b := service.books.book(inst.id)) is not None and b.last_seq == venue_seq)
            before = len(got)
            await test.nc.publish(subjects.resync, b"not a request")  # ignored, the service goes on
            await test.nc.publish(
                subjects.resync, encode(ResyncRequest(instruments=[inst.id], reason="gap", requester="unit"))
            )
            await eventually(lambda: any(type(i) is BookDeltas and i.snapshot for i in got[before:]))
            snap = next(i for i in got[before:] if type(i) is BookDeltas and i.snapshot)
            book = service.books.book(inst.id)
            assert book is not None and snap == book_snapshot(book)
            assert snap.last_seq == book.last_seq and snap.bids[0][0] == book.best_bid()
            reply = await test.nc.request(subjects.status("market-data"), b"", timeout=2)
            progress = decode(reply.data, Progress, reply.subject)
            assert progress.ready and progress.service == "market-data"
            assert progress.deltas[str(inst.id)] >= len(seqs) and progress.items >= before
            assert service.snapshots_sent == 1
        finally:
            service.stop()
            await asyncio.wait_for(running, 10)
            await test.close()
            await sim.stop()

    asyncio.run(scenario())


def _feed_parts(inst: Instrument, link: NatsLink) -> tuple[NatsMarketData, MessageBus, BookManager, list[MarketData]]:
    clock = LiveClock()
    feed = NatsMarketData(VENUE, [inst.id.symbol], link, "unit-consumer", clock=clock)
    bus = MessageBus()
    rules = BookRules()
    feed.add_rules(rules)  # the venue's own rules, as the services use them
    books = BookManager(bus, clock, rules.sequence_rules)
    hub = MarketDataHub(bus, books)
    seen: list[MarketData] = []

    def sink(item: MarketData) -> None:
        seen.append(item)
        hub.on_data(item)

    feed.set_sink(sink)
    feed.books = books
    feed.watch(bus)
    return feed, bus, books, seen


def test_a_consumer_asks_for_snapshots_until_one_comes_and_again_after_a_gap() -> None:
    inst = instrument()
    subjects = Subjects(unique_name("tlfeed"))
    iid = inst.id

    def delta(seq: int, prev: int) -> BookDeltas:
        return BookDeltas(iid, 1, 1, prev, seq, [(100, seq)], [], prev_seq=prev)

    async def scenario() -> None:
        link = NatsLink(require_nats(), subjects, "consumer")
        test = NatsLink(require_nats(), subjects, "test")
        await link.connect()
        await test.connect()
        requests: list[ResyncRequest] = []

        async def on_request(msg: Msg) -> None:
            requests.append(decode(msg.data, ResyncRequest, msg.subject))

        await test.nc.subscribe(subjects.resync, cb=on_request)
        feed, _bus, books, seen = _feed_parts(inst, link)
        await feed.start()
        try:
            await eventually(lambda: len(requests) >= 2)  # nobody answered the first: asked again
            assert requests[0].instruments == [iid] and requests[0].reason == "starting"
            assert feed.awaiting_snapshot == [iid]
            snapshot = BookDeltas(iid, 1, 1, 10, 10, [(100, 1)], [(101, 1)], snapshot=True)
            md = subjects.market_data(iid)
            await test.nc.publish(md, encode(snapshot))
            await eventually(lambda: books.is_valid(iid))
            assert feed.awaiting_snapshot == []
            asked = len(requests)
            # Another consumer's resync makes the service republish the same snapshot: dropped here.
            await test.nc.publish(md, encode(snapshot))
            await test.nc.publish(md, encode(delta(11, 10)))
            await eventually(lambda: books.counters(iid).applied == 1)
            assert feed.snapshots_dropped == 1 and books.counters(iid).snapshots == 1
            # Garbage on the subject is refused and counted; the book is untouched.
            await test.nc.publish(md, b"\x00\x01")
            # A lost message: the next delta does not link, the book goes invalid, a snapshot is asked for.
            await test.nc.publish(md, encode(delta(13, 12)))
            await eventually(lambda: len(requests) > asked)
            assert not books.is_valid(iid) and feed.rejected == 1
            assert requests[-1].reason.startswith("sequence gap")
            await test.nc.publish(md, encode(BookDeltas(iid, 1, 1, 13, 13, [(100, 2)], [(101, 1)], snapshot=True)))
            await test.nc.publish(md, encode(delta(14, 13)))
            await eventually(lambda: books.is_valid(iid) and books.counters(iid).applied == 2)
            # The service's own feed loss (a BookStatus it forwards) is not answered with a request:
            # its venue client resubscribes and that snapshot reaches everyone.
            asked = len(requests)
            await test.nc.publish(md, encode(BookStatus(iid, 5, False, "connection lost")))
            await test.nc.publish(md, encode(Trade(iid, 1, 1, 100, 1, Side.BUY, "t1")))
            await eventually(lambda: any(type(i) is Trade for i in seen))
            await asyncio.sleep(0.6)
            assert len(requests) == asked and not books.is_valid(iid)
        finally:
            await feed.stop()
            await link.close()
            await test.close()

    asyncio.run(scenario())
