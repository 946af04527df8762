"""End-to-end match: POST /api/v1/match/ over HTTP to gunicorn, with PDQ hashes stored in PostgreSQL,
this checkout against a baseline checkout served side by side in the same run.

    .venv/bin/python bench/match_api.py [--hashes 1000000] [--before /work/wt/match-base]
        [--database-url postgres://postgres@127.0.0.1:5432/consortium_bench_match]

Each checkout gets its own database (the URL given, and the same name + `_before`) loaded with the
same hashes (COPY; half uniform random, half in 1,000-hash variant families, all corroborated by one
published statement) and its own gunicorn from its deploy/Procfile (WEB_CONCURRENCY=2, Redis cache,
the match throttle on at a rate no request reaches, so that its cache round trips are counted).
Then, once both have built their indexes, alternating between the two servers request by request:
- one PDQ query a request, near a lone stored hash (one match) and inside a family (about 1,000
  matches): p50 / p99, next to the in-process search of the same queries on an index each checkout
  builds itself (`search` in the table; the goal is HTTP p50 at most 10x it);
- requests of 1,000 PDQ queries (one in a hundred near a stored hash, the rest match nothing, as
  frames of live streams would), sent by --clients threads at once: queries per second.
Each figure comes with the CPU time the gunicorn workers spent per request, which a loaded machine
inflates much less than latency. Every answer of the two servers is checked to hold the same matches."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from checkouts import UNTHROTTLED  # noqa: E402
from ingest import recreate_database  # noqa: E402

if "--serve" in sys.argv:  # a server child runs in the checkout it measures: that checkout's code first
    sys.path.insert(0, str(Path.cwd()))

BATCH = 1000
# Throttling stays on (its cache round trips are part of every request) at a rate no run reaches.
MATCH_RATE = "10000000/min"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=400, help="single-query requests per server")
    parser.add_argument("--batches", type=int, default=40, help="1,000-query requests per server")
    parser.add_argument("--clients", type=int, default=2, help="threads sending the 1,000-query requests")
    parser.add_argument("--before", type=Path, default=ROOT.parent / "match-base",
                        help="the baseline checkout (a git worktree of the commit to compare with)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_bench_match")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/3", help="Redis for the cache")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # child mode: a file of inputs
    return parser.parse_args()


# -- the data ----------------------------------------------------------------------------------------

def corpus(n: int, rng: np.random.Generator) -> list[str]:
    """Half uniform random, half variant families: 1,000-hash clumps within a few bits of a centre."""
    random_part = rng.integers(0, 2**63, size=(n - n // 2, 4), dtype=np.uint64)
    centres = rng.integers(0, 2**63, size=(max(1, n // 2 // 1000), 4), dtype=np.uint64)
    family = centres[np.arange(n // 2) % len(centres)].copy()
    flips = rng.integers(0, 64, size=(n // 2, 4, 3))
    for k in range(3):
        family ^= np.left_shift(np.uint64(1), flips[:, :, k].astype(np.uint64))
    rows = np.concatenate([random_part, family])
    return [f"{a:016x}{b:016x}{c:016x}{d:016x}" for a, b, c, d in rows.tolist()]


def flip_one_bit(value: str, bit: int) -> str:
    return f"{int(value, 16) ^ (1 << int(bit)):064x}"


def workload(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    values = corpus(args.hashes, rng)
    half = len(values) - len(values) // 2
    lone = [flip_one_bit(values[i], b) for i, b in zip(rng.integers(0, half, args.queries // 2),
                                                        rng.integers(0, 256, args.queries // 2))]
    family = [flip_one_bit(values[i], b) for i, b in zip(rng.integers(half, len(values), args.queries // 2),
                                                          rng.integers(0, 256, args.queries // 2))]
    batches = []
    for _ in range(args.batches):
        queries = [f"{x:016x}{y:016x}{z:016x}{w:016x}"
                   for x, y, z, w in rng.integers(0, 2**63, size=(BATCH, 4), dtype=np.uint64).tolist()]
        for slot, i, b in zip(rng.choice(BATCH, BATCH // 100, replace=False), rng.integers(0, half, BATCH // 100),
                              rng.integers(0, 256, BATCH // 100)):
            queries[slot] = flip_one_bit(values[i], int(b))
        batches.append(queries)
    return {"values": values, "lone": lone, "family": family, "batches": batches}


# -- the child: one checkout's database and gunicorn ---------------------------------------------------

def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    import io

    buffer = io.StringIO("".join("\t".join(map(str, row)) + "\n" for row in rows))
    cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)


def load(values: list[str], member_id: int, statement_id: str, slice_rows: int = 1_000_000) -> None:
    """The hashes, one cluster each, all corroborated by one published statement of the member;
    copied a slice at a time, so that ten million rows never sit in one buffer."""
    from django.db import connection

    now = "2026-01-01 00:00:00+00"
    with connection.cursor() as cursor:
        raw = cursor.connection.cursor()
        for start in range(0, len(values), slice_rows):
            part = range(start, min(len(values), start + slice_rows))
            copy_rows(raw, "hashes_cluster", ["id", "created_at"], ((i + 1, now) for i in part))
            copy_rows(raw, "hashes_hash", ["id", "signal_type", "value", "content_type", "cluster_id", "state",
                                           "created_at", "updated_at"],
                      ((i + 1, "pdq", values[i], "photo", i + 1, "active", now, now) for i in part))
            copy_rows(raw, "hashes_corroboration", ["hash_id", "statement_id", "member_id", "distance", "created_at"],
                      ((i + 1, statement_id, member_id, 0, now) for i in part))
        for table in ("hashes_cluster", "hashes_hash"):
            raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {len(values)})")
        raw.execute("ANALYZE")


# -- bench/index_memory.py stores the same corpus and asks the same kind of queries ------------------

def near_queries(values: list[str], count: int, rng: np.random.Generator) -> tuple[list[str], list[bool]]:
    """Stored values with one bit flipped: half near a random hash (one match), half inside a family
    (about 1,000); and whether each is in a family."""
    half = len(values) - len(values) // 2
    picks = np.concatenate([rng.integers(0, half, size=count // 2),
                            rng.integers(half, len(values), size=count - count // 2)])
    flipped = [f"{int(values[i], 16) ^ (1 << int(b)):064x}" for i, b in zip(picks, rng.integers(0, 256, size=count))]
    return flipped, [bool(i >= half) for i in picks]


def stored_corpus(database_url: str, hashes: int, rng: np.random.Generator, broker_url: str,
                  reuse: bool = False) -> tuple[list[str], Any]:
    """Recreate the database, migrate it, and store `corpus(hashes)` in it; returns the values and
    the member that submitted them, Django set up in this process. With `reuse`, the PDQ hashes an
    earlier run stored, however many (an interrupted load leaves fewer), and no member."""
    from ingest import recreate_database  # same folder

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    os.environ.update({"DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url,
                       "DJANGO_SETTINGS_MODULE": "consortium.settings", **UNTHROTTLED})
    if reuse:
        import django

        django.setup()
        from hashes.models import Hash

        return list(Hash.objects.filter(signal_type="pdq").order_by("pk").values_list("value", flat=True)), None
    recreate_database(database_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()

    values = corpus(hashes, rng)
    actor, seconds = store(values)
    print(f"loaded {len(values):,} PDQ hashes into PostgreSQL in {seconds:.1f} s", flush=True)
    return values, actor


def store(values: list[str]) -> tuple[Any, float]:
    """A member, one published statement of it, and `values` corroborated by it (Django set up);
    the member and the seconds the load took."""
    from django.utils import timezone

    from hashes.models import Statement
    from tests.actors import make_actor

    actor = make_actor("bench-matcher")
    statement = Statement.objects.create(
        member=actor.member, jti="bulk", kind="hash", raw=actor.statement([{"type": "md5", "value": "0" * 32}]),
        digest="bulk", state=Statement.State.PUBLISHED, published_at=timezone.now(),
    )
    started = time.perf_counter()
    load(values, actor.member.pk, str(statement.pk))
    return actor, time.perf_counter() - started


def serve(args: argparse.Namespace) -> None:
    """Load the database, measure the in-process search, start gunicorn, print where it listens and
    wait for the parent to close stdin."""
    data = json.loads(args.serve.read_text())
    recreate_database(args.database_url)
    os.environ.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url,
                       "DJANGO_SETTINGS_MODULE": "consortium.settings", **UNTHROTTLED, "THROTTLE_MATCH": MATCH_RATE})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], check=True)
    import django

    django.setup()
    from hashes.signals.index import PdqIndex
    from tests.e2e.stack import Stack

    values = data["values"]
    actor, loaded = store(values)
    started = time.perf_counter()
    local = PdqIndex.build(np.arange(1, len(values) + 1), values)
    built = time.perf_counter() - started
    local.search(data["lone"][0], 31)  # compile, or load the compiled code
    search = {}
    for kind in ("lone", "family"):
        search[kind] = []
        for q in data[kind]:
            t = time.perf_counter()
            local.search(q, 31)
            search[kind].append(time.perf_counter() - t)
    del local
    workdir = Path(tempfile.mkdtemp())
    (workdir / "var").mkdir()
    stack = Stack(workdir=workdir, overrides={"WEB_CONCURRENCY": "2", "GUNICORN_TIMEOUT": "600"})
    stack.start("web")
    try:
        stack.wait_for_web()
        print(json.dumps({"port": stack.port, "pid": stack.processes["web"].pid, "token": actor.token, "search": search, "load_seconds": loaded,
                          "build_seconds": built}), flush=True)
        sys.stdin.readline()
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class Server:
    """One checkout's gunicorn, reached by a child process that owns its database."""

    def __init__(self, name: str, checkout: Path, database_url: str, inputs: Path, args: argparse.Namespace):
        self.name = name
        self.var = tempfile.TemporaryDirectory()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
        env.update({"PYTHONPATH": f"{checkout}{os.pathsep}{checkout / 'client'}", "DJANGO_SECRET_KEY": "bench",
                    "CONSORTIUM_VAR_DIR": self.var.name, "CONSORTIUM_SIGNING_KEY_CREATE": "true",
                    "NUMBA_CACHE_DIR": str(checkout / "var" / "numba-cache")})
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", str(inputs), "--database-url", database_url,
             "--broker-url", args.broker_url, "--hashes", str(args.hashes)],
            cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.process.stdout.readline()
        while line and not line.startswith("{"):
            line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"{name}: the server child failed (see its output above)")
        ready = json.loads(line)
        self.port, self.token, self.search = ready["port"], ready["token"], ready["search"]
        self.pid = ready["pid"]
        self.load_seconds = ready["load_seconds"]

    def match(self, queries: list[str]) -> tuple[float, dict[str, Any]]:
        body = json.dumps({"signals": [{"type": "pdq", "value": q} for q in queries]}).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        started = time.perf_counter()
        connection.request("POST", "/api/v1/match/", body, headers)
        response = connection.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
        connection.close()
        if response.status != 200:
            raise SystemExit(f"{self.name}: HTTP {response.status}: {raw[:500]!r}")
        return elapsed, json.loads(raw)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the gunicorn workers (the children of the master process)."""
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:  # ppid; utime and stime follow at 11 and 12
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=120)
        self.var.cleanup()


def found(answer: dict[str, Any]) -> list[list[tuple[int, int]]]:
    return [sorted((m["hash"]["id"], m["distance"]) for m in result["matches"]) for result in answer["results"]]


def throughput(server: Server, batches: list[list[str]], clients: int) -> tuple[float, list]:
    """Queries per second with `clients` threads each sending its share of the batches in turn."""
    answers: list[Any] = [None] * len(batches)

    def send(positions: range) -> None:
        for n in positions:
            answers[n] = found(server.match(batches[n])[1])

    threads = [threading.Thread(target=send, args=(range(c, len(batches), clients),)) for c in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(batches) * BATCH / (time.perf_counter() - started), answers


def ms(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] * 1000


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args)
        return
    started = time.perf_counter()
    data = workload(args)
    servers: dict[str, Server] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as inputs:
        json.dump(data, inputs)
        inputs.flush()
        try:
            for name, checkout, url in (("before", args.before.resolve(), f"{args.database_url}_before"),
                                        ("after", ROOT, args.database_url)):
                servers[name] = Server(name, checkout, url, Path(inputs.name), args)
                print(f"{name}: {args.hashes:,} hashes loaded in {servers[name].load_seconds:.1f} s", flush=True)
            measure(servers, data, args)
        finally:
            for server in servers.values():
                server.stop()
    print(f"(whole run {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} at the end; "
          "a shared machine)")


def measure(servers: dict[str, Server], data: dict[str, Any], args: argparse.Namespace) -> None:
    names = list(servers)
    for name in names:  # each worker builds its index in the background as it starts: wait for both
        answer = throughput(servers[name], [data["lone"][:1]] * 8, 2)[1][0]
        assert answer[0], "the query's own hash must match"
        settled = time.monotonic() + 300
        used = servers[name].cpu_seconds()
        while time.monotonic() < settled:
            time.sleep(1)
            used, previous = servers[name].cpu_seconds(), used
            if used - previous < 0.05:
                break
    latency: dict[tuple[str, str], list[float]] = {(n, k): [] for n in names for k in ("lone", "family")}
    cpu: dict[tuple[str, str], float] = {}
    returned: dict[str, list[int]] = {"lone": [], "family": []}
    for kind in ("lone", "family"):
        before = {name: servers[name].cpu_seconds() for name in names}
        for i, q in enumerate(data[kind]):
            answers = {}
            for name in names if i % 2 else reversed(names):  # neither always goes first
                elapsed, answers[name] = servers[name].match([q])
                latency[(name, kind)].append(elapsed)
            assert found(answers["before"]) == found(answers["after"]), f"the servers disagree on {q}"
            returned[kind].append(len(answers["after"]["results"][0]["matches"]))
        for name in names:
            cpu[(name, kind)] = (servers[name].cpu_seconds() - before[name]) / len(data[kind])
    rates: dict[str, list[float]] = {n: [] for n in names}
    half = len(data["batches"]) // 2 or 1
    for round_ in (data["batches"][:half], data["batches"][half:]):
        if not round_:
            continue
        answers = {}
        for name in names:
            started = servers[name].cpu_seconds()
            rate, answers[name] = throughput(servers[name], round_, args.clients)
            rates[name].append(rate)
            cpu[(name, "batch")] = cpu.get((name, "batch"), 0.0) + servers[name].cpu_seconds() - started
        assert answers["before"] == answers["after"], "the servers disagree on a batch"

    def row(label: str, before: float, after: float, unit: str, better: str = "lower") -> None:
        ratio = before / after if better == "lower" else after / before
        print(f"| {label} | {before:.2f} {unit} | {after:.2f} {unit} | {ratio:.1f}x |")

    print(f"\n{args.hashes:,} PDQ hashes (half random, half in 1,000-hash families); gunicorn 2 workers each\n")
    print("| figure | before | after | after is better by |")
    print("|---|---|---|---|")
    for kind, label in (("lone", "one query near a lone hash"), ("family", "one query inside a family")):
        median = statistics.median(returned[kind])
        for p, tag in ((0.5, "p50"), (0.99, "p99")):
            row(f"{label} ({median:.0f} matches), {tag}", ms(latency[("before", kind)], p),
                ms(latency[("after", kind)], p), "ms")
        row(f"{label}: web worker CPU per request", cpu[("before", kind)] * 1000, cpu[("after", kind)] * 1000, "ms")
        row(f"{label}: in-process search, p50", ms(servers["before"].search[kind], 0.5),
            ms(servers["after"].search[kind], 0.5), "ms")
    row(f"requests of {BATCH:,} queries, {args.clients} clients", max(rates["before"]), max(rates["after"]),
        "queries/s", better="higher")
    per_query = {name: cpu[(name, "batch")] / len(data["batches"]) / BATCH * 1e6 for name in names}
    row("requests of 1,000 queries: web worker CPU per query", per_query["before"], per_query["after"], "µs")
    lone_http, lone_search = ms(latency[("after", "lone")], 0.5), ms(servers["after"].search["lone"], 0.5)
    print(f"\nafter: one query over HTTP is {lone_http / lone_search:.1f}x its in-process search "
          f"(before: {ms(latency[('before', 'lone')], 0.5) / ms(servers['before'].search['lone'], 0.5):.1f}x)")
    goals = [
        ("one query p50 <= 2 ms", lone_http <= 2.0),
        ("one query p50 <= 10x the in-process search", lone_http <= 10 * lone_search),
        ("family query p50 <= 25 ms", ms(latency[("after", "family")], 0.5) <= 25.0),
        ("1,000-query requests >= 10,000 queries/s", max(rates["after"]) >= 10_000),
    ]
    for goal, met in goals:
        print(f"goal {goal}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
