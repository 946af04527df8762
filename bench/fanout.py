"""Fan-out benchmark: 50 subscribers, each a webhook receiver on 127.0.0.1 that verifies every
delivery (v1 with its secret, v1a with the server's published key); gunicorn, the pipeline worker
and the deliver worker from deploy/Procfile on PostgreSQL + Redis.

    .venv/bin/python bench/fanout.py [--before DIR] [--rounds 1] [--events 10000] [--subscribers 50]
        [--database-url postgres://.../NAME] [--broker-url redis://.../N]

With `--before DIR` (a worktree of an earlier commit) the same measurement runs against that
checkout too, in the same run, alternating (before, this, before, this, ... for --rounds rounds),
and the figures are printed side by side with their ratios. Each measurement runs in a child
process whose code (server, workers, test actors) comes from its checkout; only this driver and
the receivers are this file's.

1. Ordinary load: 10,000 signed statements submitted through the API, as fast as the server takes
   them (batches of 500 from two connections) or, with `--rate N`, paced at N statements a second
   (batches of --paced-batch); reports events delivered per second (event x subscriber) and p50/p99
   latency from "statement accepted" (the 202) to "delivered" (arrival at each receiver), split
   into the pipeline (accepted to published) and distribution (published to delivered).
2. Incident during a backlog: every subscription is paused while another 10,000 events are
   published, then resumed; half a second into the drain one incident statement is submitted.
   Reports p50/p99 of its latency to the 50 receivers (first arrival: the priority lane) and when
   it came again on the main lane.

Needs PostgreSQL and Redis on 127.0.0.1; uses (and recreates) the database named by --database-url
(default `consortium_fanout`; with --before, that name with `_before` and `_after` appended) and
the Redis database of --broker-url (default 12). Receivers run in a process of their own; CPU seconds per component and the
machine's load average are printed with the figures, since the benchmark shares two cores with
everything it measures."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

THIS_CHECKOUT = Path(__file__).resolve().parents[1]
# A child measures the checkout it runs in (its working directory); the driver, this one.
ROOT = Path.cwd().resolve() if "--child" in sys.argv else THIS_CHECKOUT
sys.path.insert(0, str(ROOT))
from bench.checkouts import UNTHROTTLED  # noqa: E402
import procstat  # noqa: E402  (beside this file, whichever checkout a child measures)
from procstat import cpu_between, loadavg  # noqa: E402

JSON_MARK = "FANOUT-FIGURES "


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500, help="statements per POST statements/ (as fast as taken)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="submit the ordinary statements at this many a second (0: as fast as taken)")
    parser.add_argument("--paced-batch", type=int, default=50, help="statements per POST when paced")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_fanout")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--logs", type=Path, help="copy the server processes' logs into this folder at the end")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra environment setting for the server processes (repeatable)")
    parser.add_argument("--before", type=Path, help="an earlier checkout (git worktree) to measure in the same run")
    parser.add_argument("--rounds", type=int, default=1, help="with --before: measurements of each checkout")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


# --- receivers (their own process) ------------------------------------------------------------------

def receivers_main(count: int, conn, progress) -> None:
    """Run `count` receivers; report their ports, take the secrets and server keys, verify and record
    every delivery, and send the records back when told to stop."""
    from consortium_client import webhooks

    records: list[list[tuple[float, str, list[tuple[int, str, str]]]]] = [[] for _ in range(count)]
    trust: dict[str, Any] = {}
    failures = [0]

    def handler_for(index: int):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    webhooks.verify(headers, raw, secrets=[trust["secrets"][index]])
                    webhooks.verify(headers, raw, public_keys=trust["keys"], require_v1a=True)
                except (webhooks.WebhookVerificationError, KeyError):
                    failures[0] += 1
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.loads(raw)
                values = [(e["seq"], e["hash"]["value"], e["occurred_at"]) for e in body["data"].get("events", [])]
                lane = body["data"].get("lane", "")
                records[index].append((arrived, lane, values))
                if lane == "main":
                    with progress.get_lock():
                        progress[index] += len(values)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    servers = []
    for index in range(count):
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(index))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    conn.send([s.server_address[1] for s in servers])
    secrets, jwks = conn.recv()
    trust["secrets"], trust["keys"] = secrets, webhooks.load_jwks(jwks)
    conn.send("ready")
    conn.recv()  # stop
    for server in servers:
        server.shutdown()
    conn.send((records, failures[0]))


# --- the benchmark -------------------------------------------------------------------------------------

def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))]


def cpu_seconds(stack, receivers_pid: int, database: str) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of the stack's processes and their children, the receivers, the PostgreSQL
    backends serving this benchmark's database, Redis, this client (procstat.cpu_seconds)."""
    groups = {process.pid: name for name, process in stack.processes.items()}
    return procstat.cpu_seconds(groups, database, pids={receivers_pid: "receivers"})


def main() -> None:
    args = parse_args()
    if args.child or args.before is None:
        measure(args)
    else:
        compare(args)


def measure(args: argparse.Namespace) -> None:
    from bench.ingest import recreate_database

    recreate_database(args.database_url)
    os.environ.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url,
                       "DJANGO_SETTINGS_MODULE": "consortium.settings", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)

    context = multiprocessing.get_context("spawn")
    progress = context.Array("l", args.subscribers)
    parent, child = context.Pipe()
    receiver_process = context.Process(target=receivers_main, args=(args.subscribers, child, progress), daemon=True)
    receiver_process.start()
    ports = parent.recv()

    import django

    django.setup()
    from kombu import Connection

    from hashes.models import FeedHead, Incident
    from tests.actors import make_actor
    from tests.e2e.stack import Stack

    with Connection(args.broker_url) as broker:
        for queue in ("sweep", "priority", "verify", "publish", "default", "deliver_priority", "deliver"):
            try:
                broker.default_channel.queue_purge(queue)
            except Exception:
                pass
    publisher = make_actor("bench-platform")
    members = [make_actor(f"subscriber-{n:02d}") for n in range(args.subscribers)]
    Incident.objects.create(slug="bench-incident", name="Benchmark incident")
    total = args.events
    t0 = time.perf_counter()
    ordinary = [publisher.statement([{"type": "md5", "value": f"{n:032x}"}], content_type="file") for n in range(total)]
    backlog = [publisher.statement([{"type": "md5", "value": f"{n:032x}"}], content_type="file")
               for n in range(total, 2 * total)]
    incident_value = f"{10**9:032x}"
    incident = publisher.statement([{"type": "md5", "value": incident_value}], content_type="file",
                                   incident="bench-incident")
    print(f"signed {2 * total + 1:,} statements client-side in {time.perf_counter() - t0:.1f} s", flush=True)

    settings = {
        "WEB_CONCURRENCY": "2", "CELERY_WORKER_CONCURRENCY": "2",
        "VERIFY_CHUNK_SIZE": "250", "PUBLISH_BATCH_SIZE": "500",
        "SWEEP_INTERVAL_SECONDS": "10", "SWEEP_STALE_AFTER_SECONDS": "60",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_REQUIRE_HTTPS": "false", **UNTHROTTLED,
    }
    settings.update(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "var").mkdir()
        stack = Stack(workdir=Path(workdir), overrides=settings)
        stack.start("web", "worker", "dispatch", "deliver", "beat")
        try:
            stack.wait_for_web()
            with urllib.request.urlopen(f"{stack.base_url}/.well-known/jwks.json") as answer:
                jwks = answer.read()
            from consortium_client.http import ConsortiumClient

            subscriptions, secrets = [], []
            for member, port in zip(members, ports):
                created = ConsortiumClient(stack.base_url, member.token).request(
                    "POST", "/api/v1/subscriptions/", {"url": f"http://127.0.0.1:{port}/hook"})
                subscriptions.append((member, created["id"]))
                secrets.append(created["secret"])
            parent.send((secrets, jwks))
            assert parent.recv() == "ready"
            time.sleep(3)  # let every worker connect before the clock starts
            print(f"machine load before (1/5/15 min): {loadavg()}", flush=True)
            database = args.database_url.rsplit("/", 1)[1]
            before = cpu_seconds(stack, receiver_process.pid, database)

            if args.rate:
                accepted = submit_paced(stack, publisher, ordinary, args.paced_batch, args.rate)
            else:
                accepted = submit(stack, publisher, ordinary, args.batch)
            wait_for(progress, total, what="the ordinary events at every receiver")
            head_after_ordinary = FeedHead.objects.get().last_seq
            between = cpu_seconds(stack, receiver_process.pid, database)

            for member, subscription_id in subscriptions:
                ConsortiumClient(stack.base_url, member.token).request(
                    "PATCH", f"/api/v1/subscriptions/{subscription_id}/", {"state": "paused"})
            accepted.update(submit(stack, publisher, backlog, args.batch))
            while FeedHead.objects.get().last_seq < head_after_ordinary + total:
                time.sleep(0.2)
            resume_at = time.time()
            for member, subscription_id in subscriptions:
                ConsortiumClient(stack.base_url, member.token).request(
                    "PATCH", f"/api/v1/subscriptions/{subscription_id}/", {"state": "active"})
            time.sleep(0.5)
            incident_at = time.time()
            ConsortiumClient(stack.base_url, publisher.token).submit([incident])
            incident_accepted = time.time()
            wait_for(progress, 2 * total + 1, what="the backlog and the incident at every receiver")
            after = cpu_seconds(stack, receiver_process.pid, database)
            print(f"machine load after (1/5/15 min):  {loadavg()}", flush=True)
            parent.send("stop")
            records, failures = parent.recv()
        finally:
            stack.stop()
            receiver_process.join(timeout=10)
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in Path(workdir).glob("*.log"):
                    shutil.copy(log, args.logs / log.name)

    figures = report(args, records, failures, accepted, resume_at, incident_value, incident_at, incident_accepted,
                     before, between, after)
    if args.child:
        print(JSON_MARK + json.dumps(figures), flush=True)


def submit(stack, actor, statements: list[str], batch: int) -> dict[str, float]:
    """Submit in batches from two connections; the time each statement was accepted (its 202)."""
    from consortium_client.http import ConsortiumClient

    accepted: dict[str, float] = {}
    lock = threading.Lock()
    chunks = [statements[i:i + batch] for i in range(0, len(statements), batch)]

    def submitter(mine: list[list[str]]) -> None:
        client = ConsortiumClient(stack.base_url, actor.token, timeout=120)
        for chunk in mine:
            body = client.submit(chunk)
            now = time.time()
            assert not body["rejected"], body["rejected"][:3]
            with lock:
                for statement in chunk:
                    accepted[_value(statement)] = now

    threads = [threading.Thread(target=submitter, args=(chunks[n::2],)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted


def submit_paced(stack, actor, statements: list[str], batch: int, rate: float) -> dict[str, float]:
    """Submit `batch` statements every batch/rate seconds from one connection (open loop: a late
    POST is followed at once by the next one that is due); the time each statement was accepted."""
    from consortium_client.http import ConsortiumClient

    client = ConsortiumClient(stack.base_url, actor.token, timeout=120)
    accepted: dict[str, float] = {}
    started = time.monotonic()
    for n, i in enumerate(range(0, len(statements), batch)):
        delay = started + n * batch / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        chunk = statements[i:i + batch]
        body = client.submit(chunk)
        now = time.time()
        assert not body["rejected"], body["rejected"][:3]
        for statement in chunk:
            accepted[_value(statement)] = now
    return accepted


def _value(statement: str) -> str:
    import base64

    payload = statement.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["signals"][0]["value"]


def wait_for(progress, per_receiver: int, *, what: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while min(progress[:]) < per_receiver:
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}: {min(progress[:])} of {per_receiver}")
        time.sleep(0.05)


def report(args, records, failures, accepted, resume_at, incident_value, incident_at, incident_accepted,
           before, between, after) -> dict[str, float]:
    total, subscribers = args.events, args.subscribers
    ordinary_values = {f"{n:032x}" for n in range(total)}
    latencies, first_arrival, last_arrival = [], float("inf"), 0.0
    published: dict[str, float] = {}
    fanout: list[float] = []
    incident_first, incident_main, gaps = [], [], 0
    for per_receiver in records:
        seen: dict[str, float] = {}
        main_seqs: list[int] = []
        for arrived, lane, events in per_receiver:
            for seq, value, occurred_at in events:
                seen.setdefault(value, arrived)
                if value not in published:
                    published[value] = datetime.fromisoformat(occurred_at).timestamp()
                if lane == "main":
                    main_seqs.append(seq)
                    if value == incident_value:
                        incident_main.append(arrived - incident_accepted)
        # Every event of the feed, in seq order, once a receiver drops repeated deliveries.
        gaps += list(dict.fromkeys(main_seqs)) != list(range(1, 2 * total + 2))
        for value in ordinary_values:
            latencies.append(seen[value] - accepted[value])
            fanout.append(seen[value] - published[value])
            first_arrival = min(first_arrival, seen[value])
            last_arrival = max(last_arrival, seen[value])
        incident_first.append(seen[incident_value] - incident_accepted)
    start = min(accepted[v] for v in ordinary_values)
    delivered = total * subscribers
    span = last_arrival - start
    print()
    offered = f"paced at {args.rate:,.0f}/s" if args.rate else "as fast as the server takes them"
    print(f"subscribers: {subscribers}; events: {total:,} ordinary ({offered}) + {total:,} backlog + 1 incident")
    print(f"signature failures at receivers: {failures}; receivers whose main lane was not exactly "
          f"seq 1..{2 * total + 1} in order: {gaps}")
    print(f"ordinary: {delivered:,} event deliveries in {span:.1f} s from the first 202: {delivered / span:,.0f} /s")
    print(f"ordinary: accepted-to-delivered latency p50 {statistics.median(latencies):.2f} s, "
          f"p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s (goal p99 < 3 s)")
    pipeline = [published[v] - accepted[v] for v in ordinary_values]
    print(f"  of which accepted-to-published (the pipeline): p50 {statistics.median(pipeline):.2f} s, "
          f"p99 {percentile(pipeline, 0.99):.2f} s; published-to-delivered (distribution): "
          f"p50 {statistics.median(fanout):.2f} s, p99 {percentile(fanout, 0.99):.2f} s")
    print(f"incident (submitted {incident_at - resume_at:.1f} s into draining a {total:,}-event backlog): "
          f"p50 {statistics.median(incident_first):.2f} s, p99 {percentile(incident_first, 0.99):.2f} s, "
          f"max {max(incident_first):.2f} s (goal p99 < 1 s)")
    incident_published = published[incident_value] - incident_accepted
    print(f"  of which accepted-to-published: {incident_published:.2f} s; published-to-delivered: "
          f"p50 {statistics.median(incident_first) - incident_published:.2f} s, "
          f"p99 {percentile(incident_first, 0.99) - incident_published:.2f} s")
    if incident_main:
        print(f"incident again on the main lane, in its place: p50 {statistics.median(incident_main):.1f} s after "
              f"acceptance")
    first, second = cpu_between(before, between), cpu_between(between, after)
    print("CPU seconds by component (2 cores): ordinary phase, backlog + incident phase")
    for name in sorted(second, key=lambda n: -(first.get(n, 0.0) + second[n])):
        print(f"  {name:18} {first.get(name, 0.0):7.1f} s {second[name]:7.1f} s")
    return {
        "latency_p50": statistics.median(latencies), "latency_p99": percentile(latencies, 0.99),
        "pipeline_p50": statistics.median(pipeline), "pipeline_p99": percentile(pipeline, 0.99),
        "distribution_p50": statistics.median(fanout), "distribution_p99": percentile(fanout, 0.99),
        "deliveries_per_second": delivered / span,
        "incident_p50": statistics.median(incident_first), "incident_p99": percentile(incident_first, 0.99),
        "incident_distribution_p99": percentile(incident_first, 0.99) - incident_published,
        "deliver_cpu_ordinary": first.get("deliver", 0.0), "deliver_cpu_backlog": second.get("deliver", 0.0),
        "dispatch_cpu": first.get("dispatch", 0.0) + second.get("dispatch", 0.0),
        "worker_cpu_ordinary": first.get("worker", 0.0),
        "signature_failures": failures, "out_of_order_receivers": gaps,
    }

# --- two checkouts side by side ---------------------------------------------------------------------

# (key, label, lower is better)
COMPARED = [
    ("latency_p99", "accepted-to-delivered p99 (s)", True),
    ("latency_p50", "accepted-to-delivered p50 (s)", True),
    ("distribution_p99", "published-to-delivered p99 (s)", True),
    ("distribution_p50", "published-to-delivered p50 (s)", True),
    ("pipeline_p99", "accepted-to-published p99 (s)", True),
    ("deliveries_per_second", "event deliveries / s", False),
    ("incident_p99", "incident after backlog p99 (s)", True),
    ("incident_distribution_p99", "incident published-to-delivered p99 (s)", True),
    ("deliver_cpu_ordinary", "deliver worker CPU, ordinary phase (s)", True),
    ("deliver_cpu_backlog", "deliver worker CPU, backlog phase (s)", True),
    ("dispatch_cpu", "dispatch worker CPU (s)", True),
    ("worker_cpu_ordinary", "pipeline worker CPU, ordinary phase (s)", True),
    ("signature_failures", "signature failures", True),
    ("out_of_order_receivers", "receivers not in seq order", True),
]


def run_child(args: argparse.Namespace, checkout: Path, label: str) -> dict[str, float]:
    """One measurement of `checkout`, in a child process whose imports and working directory are
    that checkout's; its report is shown as it goes, its figures come back as a JSON line."""
    forwarded = ["--events", str(args.events), "--subscribers", str(args.subscribers), "--batch", str(args.batch),
                 "--rate", str(args.rate), "--paced-batch", str(args.paced_batch),
                 "--database-url", f"{args.database_url}_{label}", "--broker-url", args.broker_url]
    for item in args.set:
        forwarded += ["--set", item]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env.update({"PYTHONPATH": f"{checkout}{os.pathsep}{checkout / 'client'}", "PYTHONUNBUFFERED": "1",
                "CONSORTIUM_SIGNING_KEY_CREATE": "true",
                "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY", "fanout-benchmark-not-a-secret")})
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *forwarded]
    print(f"\n===== {label}: {checkout} =====", flush=True)
    figures = None
    with subprocess.Popen(command, cwd=checkout, env=env, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.startswith(JSON_MARK):
                figures = json.loads(line[len(JSON_MARK):])
            else:
                print(f"[{label}] {line}", end="", flush=True)
    if child.returncode != 0 or figures is None:
        raise SystemExit(f"the measurement of {checkout} failed (exit status {child.returncode})")
    return figures


def compare(args: argparse.Namespace) -> None:
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    print(f"machine load at the start (1/5/15 min): {loadavg()}")
    for _ in range(args.rounds):
        runs["before"].append(run_child(args, args.before.resolve(), "before"))
        runs["after"].append(run_child(args, THIS_CHECKOUT, "after"))
    print(f"\nmachine load at the end (1/5/15 min): {loadavg()}")
    print(f"\n{args.events:,} statements, {args.subscribers} verifying subscribers; median of {args.rounds} "
          f"measurement(s) of each checkout, alternating; before = {args.before}, after = {THIS_CHECKOUT}")
    print(f"{'':44} {'before':>9} {'after':>9} {'ratio':>9}")
    for key, label, lower_is_better in COMPARED:
        old = statistics.median(run[key] for run in runs["before"])
        new = statistics.median(run[key] for run in runs["after"])
        if old and new:
            ratio = f"{old / new:8.2f}x" if lower_is_better else f"{new / old:8.2f}x"
        else:
            ratio = "        -"
        print(f"{label:44} {old:9.2f} {new:9.2f} {ratio}")
    print("(ratio: how many times better after is; >1 is an improvement)")
    new_p99 = statistics.median(run["latency_p99"] for run in runs["after"])
    incident = statistics.median(run["incident_p99"] for run in runs["after"])
    print(f"goals: accepted-to-delivered p99 < 3 s: {'met' if new_p99 < 3 else 'NOT met'} ({new_p99:.2f} s); "
          f"incident p99 < 1 s: {'met' if incident < 1 else 'NOT met'} ({incident:.2f} s)")


if __name__ == "__main__":
    main()
