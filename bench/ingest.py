"""Ingest benchmark: 20,000 signed statements in batches of 500, over HTTP to gunicorn, verified
and published by two Celery workers on PostgreSQL + Redis, until every one is in the feed.

    .venv/bin/python bench/ingest.py [--statements 20000] [--batch 500]

Prints end-to-end statements per second, p50/p99 submit-to-feed latency, and, measured in the same
run as the reference, the raw Ed25519 verification rate of one core. Needs PostgreSQL and Redis on
127.0.0.1 (override with --database-url / --broker-url); it uses (and recreates) the database
`consortium_bench`."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.checkouts import UNTHROTTLED  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2, help="concurrent submitting connections")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_bench")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/14")
    return parser.parse_args()


def recreate_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def ed25519_verify_rate(n: int = 20_000) -> float:
    """Single-core reference: cryptography's Ed25519 verify, on statements like the benchmark's."""
    from consortium_client import jws, keys
    from consortium_client.statements import StatementSigner, hash_statement

    private = keys.generate_private_key()
    public = private.public_key()
    signer = StatementSigner(private, "k")
    parsed = [jws.parse(signer.sign(hash_statement(iss="x", signals=[{"type": "md5", "value": f"{i:032x}"}],
                                                   content_type="file"))) for i in range(2000)]
    start = time.perf_counter()
    for i in range(n):
        p = parsed[i % len(parsed)]
        public.verify(p.signature, p.signing_input)
    return n / (time.perf_counter() - start)


def cpu_seconds_by_component(stack) -> dict[str, float]:
    """CPU time (user + system) of every process, grouped: each stack process with its children,
    PostgreSQL, Redis, and this benchmark client. Read from `ps`, so nothing extra is installed."""
    groups = {process.pid: name for name, process in stack.processes.items()}
    totals: dict[str, float] = {}
    out = subprocess.run(["ps", "-eo", "pgid=,pid=,cputimes=,comm="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pgid, pid, seconds, comm = line.split(None, 3)
        if int(pgid) in groups:
            name = groups[int(pgid)]
        elif comm.startswith("postgres"):
            name = "postgresql"
        elif comm.startswith("redis"):
            name = "redis"
        elif int(pid) == os.getpid():
            name = "benchmark client"
        else:
            continue
        totals[name] = totals.get(name, 0.0) + float(seconds)
    return totals


def main() -> None:
    args = parse_args()
    recreate_database(args.database_url)
    os.environ.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url,
                       "DJANGO_SETTINGS_MODULE": "consortium.settings", **UNTHROTTLED})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()
    from tests.actors import make_actor
    from tests.e2e.stack import Stack

    actor = make_actor("bench-platform")
    print(f"reference: Ed25519 verify on one core: {ed25519_verify_rate():,.0f} /s", flush=True)

    values = [f"{n:032x}" for n in range(args.statements)]
    t0 = time.perf_counter()
    statements = [actor.statement([{"type": "md5", "value": v}], content_type="file") for v in values]
    print(f"signed {len(statements):,} statements client-side in {time.perf_counter() - t0:.1f} s", flush=True)

    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "var").mkdir()
        stack = Stack(workdir=Path(workdir), overrides={
            "WEB_CONCURRENCY": "2", "CELERY_WORKER_CONCURRENCY": "1",
            "VERIFY_CHUNK_SIZE": "250", "PUBLISH_BATCH_SIZE": "500",
            "SWEEP_INTERVAL_SECONDS": "10", "SWEEP_STALE_AFTER_SECONDS": "60",
        })
        stack.purge_broker()
        stack.start("web", "worker", "worker2", "beat")
        try:
            stack.wait_for_web()
            time.sleep(3)  # let both workers connect before the clock starts
            before = cpu_seconds_by_component(stack)
            run(stack, actor, statements, values, args)
            after = cpu_seconds_by_component(stack)
            print("CPU seconds spent during the run, by component (2 cores):")
            for name in sorted(after, key=lambda n: -(after[n] - before.get(n, 0.0))):
                print(f"  {name:18} {after[name] - before.get(name, 0.0):7.1f} s")
        finally:
            stack.stop()


def run(stack, actor, statements, values, args) -> None:
    from consortium_client.http import ConsortiumClient

    submitted_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    batches = [list(range(i, min(i + args.batch, len(statements)))) for i in range(0, len(statements), args.batch)]
    lock = threading.Lock()

    def submitter(my_batches):
        client = ConsortiumClient(stack.base_url, actor.token, timeout=120)
        for batch in my_batches:
            body = client.submit([statements[i] for i in batch])
            now = time.perf_counter()
            assert not body["rejected"], body["rejected"][:3]
            with lock:
                for i in batch:
                    submitted_at[values[i]] = now

    def reader():
        client = ConsortiumClient(stack.base_url, actor.token, timeout=120)
        after = 0
        while len(seen_at) < len(values):
            page = client.feed(after, 1000)
            now = time.perf_counter()
            for event in page["events"]:
                seen_at.setdefault(event["hash"]["value"], now)
            after = page["next_after"]
            if not page["has_more"]:
                time.sleep(0.05)

    start = time.perf_counter()
    threads = [threading.Thread(target=submitter, args=(batches[n::args.clients],)) for n in range(args.clients)]
    read = threading.Thread(target=reader)
    read.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    submit_done = time.perf_counter()
    read.join(timeout=600)
    end = max(seen_at.values())
    latencies = sorted(seen_at[v] - submitted_at[v] for v in values)
    rate = len(values) / (end - start)
    reference = ed25519_verify_rate()
    print(f"statements:                 {len(values):,} in batches of {args.batch} ({args.clients} clients)")
    print(f"accepted over HTTP:         {len(values) / (submit_done - start):,.0f} /s")
    print(f"end to end (in the feed):   {rate:,.0f} /s   (goal 2,000 /s)")
    print(f"submit-to-feed latency:     p50 {statistics.median(latencies):.2f} s   "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} s")
    print(f"Ed25519 verify, one core:   {reference:,.0f} /s (reference)")
    print(f"ratio end-to-end / one-core verify: {rate / reference:.2f}")


if __name__ == "__main__":
    main()
