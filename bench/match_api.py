"""End-to-end match latency: POST /api/v1/match/ with one PDQ query, over HTTP to gunicorn, with
1,000,000 PDQ hashes stored in PostgreSQL.

    .venv/bin/python bench/match_api.py [--hashes 1000000] [--queries 500]

It loads the hashes straight into the database (COPY), starts gunicorn from deploy/Procfile, and
reports: how long the web process takes to build its index from the database (its first match
request), then single-query latency p50/p99 over HTTP, next to the same searches made in-process
on an index built here (the part of the latency that is the search itself). Uses (and recreates)
the database `consortium_bench_match`."""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.checkouts import UNTHROTTLED  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_bench_match")
    return parser.parse_args()


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


def near_queries(values: list[str], count: int, rng: np.random.Generator) -> tuple[list[str], list[bool]]:
    """Stored values with one bit flipped: half near a random hash (one match), half inside a family
    (about 1,000); and whether each is in a family."""
    half = len(values) - len(values) // 2
    picks = np.concatenate([rng.integers(0, half, size=count // 2),
                            rng.integers(half, len(values), size=count - count // 2)])
    flipped = [f"{int(values[i], 16) ^ (1 << int(b)):064x}" for i, b in zip(picks, rng.integers(0, 256, size=count))]
    return flipped, [bool(i >= half) for i in picks]


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
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
    from django.utils import timezone

    from hashes.models import Statement
    from tests.actors import make_actor

    values = corpus(hashes, rng)
    actor = make_actor("bench-matcher")
    statement = Statement.objects.create(
        member=actor.member, jti="bulk", kind="hash", raw=actor.statement([{"type": "md5", "value": "0" * 32}]),
        digest="bulk", state=Statement.State.PUBLISHED, published_at=timezone.now(),
    )
    started = time.perf_counter()
    load(values, actor.member.pk, str(statement.pk))
    print(f"loaded {len(values):,} PDQ hashes into PostgreSQL in {time.perf_counter() - started:.1f} s", flush=True)
    return values, actor


def main() -> None:
    args = parse_args()
    rng = np.random.default_rng(7)
    values, actor = stored_corpus(args.database_url, args.hashes, rng, "redis://127.0.0.1:6379/11")

    from consortium_client.http import ConsortiumClient
    from hashes.signals.index import PdqIndex
    from tests.e2e.stack import Stack

    flipped, in_family = near_queries(values, args.queries, rng)

    started = time.perf_counter()
    local = PdqIndex.build(np.arange(1, len(values) + 1), values)
    build_seconds = time.perf_counter() - started
    local.search(flipped[0])  # compile
    in_process = []
    for q in flipped:
        t = time.perf_counter()
        local.search(q, 31)
        in_process.append(time.perf_counter() - t)

    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "var").mkdir()
        stack = Stack(workdir=Path(workdir), overrides={"WEB_CONCURRENCY": "1", "GUNICORN_TIMEOUT": "600"})
        stack.start("web")
        try:
            stack.wait_for_web()
            client = ConsortiumClient(stack.base_url, actor.token, timeout=600)
            t = time.perf_counter()
            first = client.request("POST", "/api/v1/match/", {"signals": [{"type": "pdq", "value": flipped[0]}]})
            first_seconds = time.perf_counter() - t
            assert first["results"][0]["matches"], "the query's own hash must match"
            latencies, counts = [], []
            for q in flipped:
                t = time.perf_counter()
                answer = client.request("POST", "/api/v1/match/", {"signals": [{"type": "pdq", "value": q}]})
                latencies.append(time.perf_counter() - t)
                counts.append(len(answer["results"][0]["matches"]))
        finally:
            stack.stop()

    def ms(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(len(xs) * p))] * 1000

    print(f"stored hashes:                        {len(values):,} (half random, half in 1,000-hash families)")
    print(f"index build in this process:          {build_seconds:.1f} s")
    print(f"web process: first match (builds its index from PostgreSQL): {first_seconds:.1f} s")
    for label, wanted in (("near a lone hash", False), ("inside a family", True)):
        part = [x for x, f in zip(latencies, in_family) if f is wanted]
        found = [c for c, f in zip(counts, in_family) if f is wanted]
        print(f"POST /api/v1/match/, one PDQ query {label}: p50 {ms(part, 0.5):.2f} ms   p99 {ms(part, 0.99):.2f} ms"
              f"   (median {statistics.median(found):.0f} matches returned)")
    print(f"the search alone, in-process:         p50 {ms(in_process, 0.5):.3f} ms   p99 {ms(in_process, 0.99):.3f} ms")
    print(f"share of the HTTP latency that is search: {statistics.median(in_process) / statistics.median(latencies):.1%}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
