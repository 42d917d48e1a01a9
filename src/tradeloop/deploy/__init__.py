"""The service split over NATS: market data, strategy, and execution with risk as separate processes.

The three services exchange the engine's own message types (msgspec tagged structs, msgpack-encoded)
on NATS subjects (:mod:`tradeloop.deploy.subjects`):

* **market data** (:mod:`~tradeloop.deploy.market_data_service`): the venues' market-data clients,
  every normalized item published on core NATS (loss tolerated: a consumer that finds a sequence gap
  asks for a snapshot, which the service publishes from its own book);
* **strategy** (:mod:`~tradeloop.deploy.strategy_service`): books from NATS, the strategy plugin,
  its commands on JetStream, and its view of orders and positions kept from the execution service's
  state snapshot plus its order events (JetStream);
* **execution** (:mod:`~tradeloop.deploy.execution_service`): the live node (risk, OMS, venue
  execution clients, journal) without a strategy, commands from JetStream, events to JetStream.

``tradeloop split`` (:mod:`~tradeloop.deploy.launcher`) starts and supervises the three processes on
one machine; the single-process ``tradeloop live`` stays the default. :mod:`~tradeloop.deploy.lockstep`
steps a local venue simulator one market item at a time, each only once the whole node has settled,
so that a split run and a single-process run on the same data make the same fills.
"""
