"""The embedded broker (consortium/embedded_broker.py) under concurrent producers and consumers, in
separate processes as `make run` has them: every message arrives exactly once, a half-written or
unreadable file never stops a consumer, and queues are taken in priority order."""

from __future__ import annotations

import multiprocessing
import socket
import time
from pathlib import Path

from kombu import Connection, Consumer, Exchange, Producer, Queue

from consortium.embedded_broker import Transport

EXCHANGE = Exchange("stress", type="direct")
STRESS = Queue("stress", EXCHANGE, routing_key="stress")
PRODUCERS, CONSUMERS, MESSAGES = 4, 2, 20_000


def connect(folder: Path) -> Connection:
    return Connection(transport=Transport, transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder),
        "control_folder": str(folder / "control"), "polling_interval": 0.01,
    })


def produce(folder: Path, producer: int, count: int) -> None:
    with connect(folder) as connection:
        publish = Producer(connection.channel(), exchange=EXCHANGE, routing_key="stress", serializer="json").publish
        for n in range(count):
            publish({"producer": producer, "n": n}, declare=[STRESS])


def consume(folder: Path, consumer: int, stop) -> None:
    """Appends each message's (producer, n) to its own file, acknowledging after the write."""
    with connect(folder) as connection, open(folder / f"consumed-{consumer}.txt", "a") as out:
        def record(body, message):
            out.write(f"{body['producer']} {body['n']}\n")
            out.flush()
            message.ack()

        with Consumer(connection.channel(), queues=[STRESS], callbacks=[record], accept=["json"]):
            while not stop.is_set():
                try:
                    connection.drain_events(timeout=0.2)
                except socket.timeout:
                    pass


def consumed(folder: Path) -> list[tuple[int, int]]:
    lines = []
    for path in folder.glob("consumed-*.txt"):
        lines += [tuple(map(int, line.split())) for line in path.read_text().splitlines()]
    return lines


def test_four_producers_and_two_consumers_move_20000_messages_with_none_lost_or_repeated(tmp_path):
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    consumers = [spawn.Process(target=consume, args=(tmp_path, c, stop)) for c in range(CONSUMERS)]
    producers = [spawn.Process(target=produce, args=(tmp_path, p, MESSAGES // PRODUCERS)) for p in range(PRODUCERS)]
    for process in consumers + producers:
        process.start()
    try:
        for process in producers:
            process.join(timeout=300)
            assert process.exitcode == 0, f"a producer failed ({process.exitcode})"
        deadline = time.monotonic() + 300
        while len(consumed(tmp_path)) < MESSAGES and time.monotonic() < deadline:
            assert all(process.is_alive() for process in consumers), "a consumer died"
            time.sleep(0.2)
        time.sleep(0.5)  # anything delivered twice would arrive now
    finally:
        stop.set()
        for process in consumers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in consumers] == [0] * CONSUMERS
    received = consumed(tmp_path)
    assert sorted(received) == sorted((p, n) for p in range(PRODUCERS) for n in range(MESSAGES // PRODUCERS))
    assert all(len(path.read_text().splitlines()) > 0 for path in tmp_path.glob("consumed-*.txt")), \
        "both consumers took part"
    assert not list((tmp_path / "queues" / "stress").iterdir()) and not list((tmp_path / "claimed").iterdir())


def test_a_message_file_that_does_not_decode_is_set_aside_and_the_consumer_goes_on(tmp_path):
    with connect(tmp_path) as connection:
        channel = connection.channel()
        Producer(channel, exchange=EXCHANGE, routing_key="stress").publish({"n": 1}, declare=[STRESS])
        folder = tmp_path / "queues" / "stress"
        (folder / "00000000000000000000-torn.msg").write_bytes(b"")  # sorts first: taken first
        received = []
        with Consumer(channel, queues=[STRESS], callbacks=[lambda body, message: received.append(body)],
                      accept=["json"]):
            connection.drain_events(timeout=2)
    assert received == [{"n": 1}]
    assert [path.name for path in (tmp_path / "corrupt").iterdir()] == ["00000000000000000000-torn.msg"]


def test_a_consumer_takes_its_queues_in_the_order_it_consumes_them(tmp_path):
    first, second = (Queue(name, Exchange(name), routing_key=name) for name in ("first", "second"))
    with connect(tmp_path) as connection:
        channel = connection.channel()
        for n in range(3):  # the later queue has older messages
            Producer(channel, exchange=second.exchange, routing_key="second").publish({"q": "second"}, declare=[second])
        for n in range(3):
            Producer(channel, exchange=first.exchange, routing_key="first").publish({"q": "first"}, declare=[first])
        order = []
        with Consumer(channel, queues=[first, second], callbacks=[lambda body, message: order.append(body["q"])],
                      accept=["json"]):
            for _ in range(6):
                connection.drain_events(timeout=2)
    assert order == ["first"] * 3 + ["second"] * 3
