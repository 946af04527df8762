"""Ingest benchmark: signed statements over HTTP to gunicorn, verified and published by two Celery
workers on PostgreSQL + Redis, until every one is in the feed; this checkout and a baseline checkout
(--before, a git worktree of an older commit) measured side by side in the same run.

    .venv/bin/python bench/ingest.py [--before ../ingest-base] [--statements 20000] [--rounds 1]

Two measurements per checkout and round, the checkouts taking turns so that whatever else the
machine does weighs on both alike:
- burst: --statements in batches of --batch from two connections, as fast as the server takes them:
  end-to-end statements per second (first POST to the last statement in the feed) and the
  submit-to-feed latency of each statement (from the start of its POST to the feed read that first
  showed it);
- paced: --paced-statements at --rate a second in batches of --paced-batch (open loop): the latency a
  platform sees when the server keeps up.
The reference is the raw Ed25519 verification rate of one core, measured in the same run. Each
checkout gets a freshly created database (--database-url, recreated) and the Redis DB of
--broker-url, purged; CPU seconds of every process are read from /proc. --profile DIR records every
stack process with py-spy (collapsed stacks, one file per process) during the burst."""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHILD = "--child" in sys.argv
# A child measures the checkout it runs in (its cwd, also on PYTHONPATH): its tests.e2e.stack starts
# that checkout's gunicorn and Celery.
sys.path.insert(0, str(Path.cwd() if CHILD else ROOT))

from bench.checkouts import UNTHROTTLED  # noqa: E402
import procstat  # noqa: E402  (beside this file, whichever checkout a child measures)
from procstat import cpu_between, loadavg  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="baseline checkout (a git worktree), measured in turn with this one")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each checkout, alternating")
    parser.add_argument("--statements", type=int, default=20_000, help="burst size")
    parser.add_argument("--batch", type=int, default=500, help="statements per POST in the burst")
    parser.add_argument("--clients", type=int, default=2, help="concurrent submitting connections in the burst")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced statements per second (0: no paced run)")
    parser.add_argument("--paced-statements", type=int, default=20_000)
    parser.add_argument("--paced-batch", type=int, default=100)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_ingest_bench")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--profile", type=Path, help="py-spy every process of the burst into this folder")
    parser.add_argument("--child", choices=["burst", "paced"], help=argparse.SUPPRESS)
    return parser.parse_args()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered))) - 1))]


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


# ---------------------------------------------------------------------------------------------
# The parent: runs each checkout's measurement in a child, in turns, and prints the comparison.

def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    checkouts = [("now", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    print(f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) at start: {loadavg()}", flush=True)
    reference = ed25519_verify_rate()
    print(f"reference: Ed25519 verify on one core: {reference:,.0f} /s", flush=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"burst": [], "paced": []} for name, _ in checkouts}
    modes = ["burst"] + (["paced"] if args.rate > 0 else [])
    for round_ in range(args.rounds):
        for mode in modes:
            # Alternate which checkout goes first, so neither always runs on a warmer machine.
            for name, checkout in (checkouts if round_ % 2 == 0 else checkouts[::-1]):
                result = run_child(checkout, mode, args)
                results[name][mode].append(result)
                print(f"  round {round_ + 1} {mode:5} {name:6}: {summary(mode, result)}", flush=True)
    reference = (reference + ed25519_verify_rate()) / 2
    report(results, modes, reference, args)


def run_child(checkout: Path, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "DJANGO_"))}
    env.update({"PYTHONPATH": f"{checkout}{os.pathsep}{checkout / 'client'}",
                "DJANGO_SETTINGS_MODULE": "consortium.settings", **UNTHROTTLED})
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode,
            "--statements", str(args.statements), "--batch", str(args.batch), "--clients", str(args.clients),
            "--rate", str(args.rate), "--paced-statements", str(args.paced_statements),
            "--paced-batch", str(args.paced_batch),
            "--database-url", args.database_url, "--broker-url", args.broker_url]
    if args.profile and mode == "burst":
        argv += ["--profile", str((args.profile / checkout.name).resolve())]
    result = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"{checkout} ({mode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(mode: str, r: dict[str, Any]) -> str:
    rate = f"end to end {r['end_to_end']:,.0f}/s, accepted {r['accepted']:,.0f}/s, " if mode == "burst" else ""
    return (f"{rate}latency p50 {r['p50']:.2f} s p99 {r['p99']:.2f} s, "
            f"CPU {1000 * sum(r['cpu'].values()) / r['statements']:.2f} ms/statement, load {r['load']}")


def report(results: dict[str, dict[str, list[dict[str, Any]]]], modes: list[str], reference: float,
           args: argparse.Namespace) -> None:
    def best(name: str, mode: str, key: str, pick=max) -> float:
        return pick(r[key] for r in results[name][mode])

    names = list(results)
    print(f"\nEd25519 verify, one core (mean of two readings): {reference:,.0f} /s")
    print(f"{'figure':44} " + " ".join(f"{n:>12}" for n in names) + ("   now/before" if len(names) > 1 else ""))
    rows = [("burst", "end_to_end", max, "end to end, statements/s (best)"),
            ("burst", "accepted", max, "accepted over HTTP, statements/s (best)"),
            ("burst", "p50", min, "burst submit-to-feed p50, s (best)"),
            ("burst", "p99", min, "burst submit-to-feed p99, s (best)")]
    if "paced" in modes:
        rows += [("paced", "p50", min, f"paced {args.rate:,.0f}/s submit-to-feed p50, s"),
                 ("paced", "p99", min, f"paced {args.rate:,.0f}/s submit-to-feed p99, s"),
                 ("paced", "p99", max, f"paced {args.rate:,.0f}/s p99, worst round, s")]
    for mode, key, pick, title in rows:
        values = [best(n, mode, key, pick) for n in names]
        ratio = f"   {values[0] / values[1]:.2f}x" if len(values) > 1 and values[1] else ""
        print(f"{title:44} " + " ".join(f"{v:12,.2f}" for v in values) + ratio)
    values = [best(n, "burst", "end_to_end") / reference for n in names]
    print(f"{'end to end / one-core Ed25519 verify':44} " + " ".join(f"{v:12.3f}" for v in values)
          + "   (goal >= 0.3)")
    print("\nCPU ms per statement in the burst, by component (mean over rounds):")
    components = sorted({c for n in names for r in results[n]["burst"] for c in r["cpu"]})
    for component in components:
        values = [statistics.mean(r["cpu"].get(component, 0.0) * 1000 / r["statements"] for r in results[n]["burst"])
                  for n in names]
        print(f"  {component:42} " + " ".join(f"{v:12.3f}" for v in values))
    print(f"\nload average (1/5/15 min) at the end: {loadavg()}")


# ---------------------------------------------------------------------------------------------
# The child: one measurement of the checkout it runs in.

def recreate_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def cpu_seconds(stack, database: str) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of the stack's processes with their children, the PostgreSQL backends of this
    database, Redis, this client (procstat.cpu_seconds)."""
    groups = {process.pid: name.rstrip("0123456789") for name, process in stack.processes.items()}
    return procstat.cpu_seconds(groups, database, redis="redis (shared: other engineers' too)")


def child(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    (workdir / "var").mkdir()
    os.environ.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url,
                       "DJANGO_SECRET_KEY": "bench-not-secret", "CONSORTIUM_VAR_DIR": str(workdir / "var"),
                       "CONSORTIUM_SIGNING_KEY_CREATE": "true", "INDEX_WARM_ON_START": "false"})
    recreate_database(args.database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], check=True,
                   stdout=sys.stderr)
    import django

    django.setup()
    from tests.actors import make_actor
    from tests.e2e.stack import Stack

    actor = make_actor("bench-platform")
    count = args.statements if args.child == "burst" else args.paced_statements
    statements = [actor.statement([{"type": "md5", "value": f"{n:032x}"}], content_type="file") for n in range(count)]
    stack = Stack(workdir=workdir, overrides={
        "WEB_CONCURRENCY": "2", "CELERY_WORKER_CONCURRENCY": "1",
        "VERIFY_CHUNK_SIZE": "250", "PUBLISH_BATCH_SIZE": "500",
        "SWEEP_INTERVAL_SECONDS": "10", "SWEEP_STALE_AFTER_SECONDS": "60",
    })
    stack.purge_broker()
    stack.start("web", "worker", "worker2", "beat")
    profilers: list[subprocess.Popen] = []
    try:
        stack.wait_for_web()
        time.sleep(3)  # let both workers connect before the clock starts
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profilers = [subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(process.pid), "--subprocesses",
                 "--rate", "200", "--gil", "--format", "raw", "--output", str(args.profile / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name, process in stack.processes.items()
                if name != "beat"]
            time.sleep(1)
        load = loadavg()
        before = cpu_seconds(stack, args.database_url.rsplit("/", 1)[1])
        if args.child == "burst":
            timing = burst(stack, actor, statements, args.batch, args.clients)
        else:
            timing = paced(stack, actor, statements, args.paced_batch, args.rate)
        after = cpu_seconds(stack, args.database_url.rsplit("/", 1)[1])
    finally:
        for profiler in profilers:
            profiler.send_signal(2)  # SIGINT: py-spy writes what it has
        for profiler in profilers:
            profiler.wait(timeout=60)
        stack.stop()
    return {**timing, "statements": count, "cpu": cpu_between(before, after), "load": load}


def _value(statement: str) -> str:
    payload = statement.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["signals"][0]["value"]


class FeedWatcher(threading.Thread):
    """Reads the feed from the start until every expected value is in it; when each first appeared."""

    def __init__(self, base_url: str, token: str, expected: int) -> None:
        super().__init__(daemon=True)
        from consortium_client.http import ConsortiumClient

        self.client, self.expected, self.seen_at = ConsortiumClient(base_url, token, timeout=120), expected, {}

    def run(self) -> None:
        after = 0
        while len(self.seen_at) < self.expected:
            page = self.client.feed(after, 1000)
            now = time.perf_counter()
            for event in page["events"]:
                self.seen_at.setdefault(event["hash"]["value"], now)
            after = page["next_after"]
            if not page["has_more"]:
                time.sleep(0.05)


def latencies(sent_at: dict[str, float], seen_at: dict[str, float]) -> dict[str, float]:
    spans = [seen_at[v] - sent_at[v] for v in sent_at]
    return {"p50": statistics.median(spans), "p99": percentile(spans, 0.99), "max": max(spans)}


def burst(stack, actor, statements: list[str], batch: int, clients: int) -> dict[str, Any]:
    from consortium_client.http import ConsortiumClient

    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    chunks = [statements[i:i + batch] for i in range(0, len(statements), batch)]

    def submitter(mine: list[list[str]]) -> None:
        client = ConsortiumClient(stack.base_url, actor.token, timeout=120)
        for chunk in mine:
            sent = time.perf_counter()
            body = client.submit(chunk)
            assert not body["rejected"], body["rejected"][:3]
            with lock:
                sent_at.update((_value(s), sent) for s in chunk)

    watcher = FeedWatcher(stack.base_url, actor.token, len(statements))
    start = time.perf_counter()
    watcher.start()
    threads = [threading.Thread(target=submitter, args=(chunks[n::clients],)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    submitted = time.perf_counter()
    watcher.join(timeout=900)
    if len(watcher.seen_at) < len(statements):
        raise SystemExit(f"only {len(watcher.seen_at)} of {len(statements)} statements reached the feed")
    end = max(watcher.seen_at.values())
    return {"end_to_end": len(statements) / (end - start), "accepted": len(statements) / (submitted - start),
            **latencies(sent_at, watcher.seen_at)}


def paced(stack, actor, statements: list[str], batch: int, rate: float) -> dict[str, Any]:
    """`batch` statements every batch/rate seconds from one connection (open loop: a late POST is
    followed at once by the next one that is due)."""
    from consortium_client.http import ConsortiumClient

    client = ConsortiumClient(stack.base_url, actor.token, timeout=120)
    sent_at: dict[str, float] = {}
    watcher = FeedWatcher(stack.base_url, actor.token, len(statements))
    watcher.start()
    started = time.perf_counter()
    for n, i in enumerate(range(0, len(statements), batch)):
        delay = started + n * batch / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        chunk = statements[i:i + batch]
        sent = time.perf_counter()
        body = client.submit(chunk)
        assert not body["rejected"], body["rejected"][:3]
        sent_at.update((_value(s), sent) for s in chunk)
    achieved = len(statements) / (time.perf_counter() - started)
    watcher.join(timeout=900)
    if len(watcher.seen_at) < len(statements):
        raise SystemExit(f"only {len(watcher.seen_at)} of {len(statements)} statements reached the feed")
    return {"offered": achieved, **latencies(sent_at, watcher.seen_at)}


if __name__ == "__main__":
    main()
