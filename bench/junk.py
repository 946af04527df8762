"""What a member's junk costs the server, and what receipt costs an ordinary request: this checkout
against an older one (--before, a git worktree), on PostgreSQL, in-process through the API client.

    .venv/bin/python bench/junk.py --before ../junk-base [--rounds 2] [--recent 100000] [--only-posts]

Per checkout and round, on a freshly created database (--database-url) and the Redis DB of
--broker-url (purged before and after): a member with --recent statements received in the last 24
hours (the daily quotas count them on every request) submits
- ordinary requests, signed statements of 1 and of 100 (median milliseconds per request, and the
  database queries of one);
- junk: 40 statements of about 495 KB (20 MB, one request) under a kid no key has, then 40 under
  the member's own kid with a signature no key made; each request, then verification (drain), timed,
  with the bytes of JWS the statement table keeps afterwards and the growth of the table on disk
  (pg_total_relation_size, dead versions included until vacuum).
The checkouts take turns, so that whatever else the machine does weighs on both alike."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkouts import run_child  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def child(recent: int, only_posts: bool = False) -> dict[str, float]:
    import base64
    import random
    import uuid
    from datetime import timedelta

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Sum
    from django.db.models.functions import Length
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from consortium.db import insert_rows
    from hashes.models import Statement
    from hashes.services.pipeline import drain
    from tests.actors import make_actor
    from tests.factories import forge, md5

    loud = make_actor("loud")
    sized = any(f.name == "size" for f in Statement._meta.concrete_fields)
    defaults = {f.name: f.get_default() for f in Statement._meta.concrete_fields}
    now, rows = timezone.now(), []
    for n in range(recent):  # published statements of about 600 bytes, spread over the last 22 hours
        at = now - timedelta(seconds=0.8 * 100_000 * n / max(recent, 1))
        rows.append({**defaults, "id": uuid.uuid4(), "member": loud.member.pk, "jti": f"old-{n}", "kind": "hash",
                     "raw": "x" * 600, "digest": "0" * 64, "received_at": at, "queued_at": at, "state": "published",
                     **({"size": 600} if sized else {})})
        if len(rows) == 5000:
            insert_rows(Statement, rows)
            rows = []
    insert_rows(Statement, rows)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE hashes_statement")

    def post(statements):
        response = loud.api.post("/api/v1/statements/", {"statements": statements}, format="json")
        assert response.status_code == 202, response.content[:300]
        return response

    serial = iter(range(10**9))
    out: dict[str, float] = {}
    for size, repeats in ((1, 300), (100, 40)):
        times, cpu = [], []
        for _ in range(repeats):
            statements = [loud.statement([md5(next(serial))]) for _ in range(size)]
            start, start_cpu = time.perf_counter(), time.process_time()
            post(statements)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        with CaptureQueriesContext(connection) as queries:
            post([loud.statement([md5(next(serial))]) for _ in range(size)])
        out[f"post_{size}_ms"] = statistics.median(times) * 1000
        out[f"post_{size}_cpu_ms"] = statistics.median(cpu) * 1000
        out[f"post_{size}_queries"] = len(queries)
    drain()
    if only_posts:
        return out
    from members.models import SigningKey

    lookups = []  # the read of the keys table that refuses an unknown kid on receipt (this branch)
    for _ in range(500):
        start = time.perf_counter()
        set(SigningKey.objects.filter(kid__in={loud.key.kid}).values_list("kid", flat=True))
        lookups.append(time.perf_counter() - start)
    out["kid_lookup_ms"] = statistics.median(lookups) * 1000

    def table_bytes() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_total_relation_size('hashes_statement')")
            return cursor.fetchone()[0]

    filler = base64.urlsafe_b64encode(random.Random(1).randbytes(370 * 768)).decode()  # does not compress
    for name, kid in (("unknown_kid", "no-such-key"), ("own_kid", loud.key.kid)):
        junk = [forge({"alg": "Ed25519", "kid": kid, "typ": "hash-statement+jws"},
                      {"iss": "loud", "iat": 1, "jti": f"{name}-{n}", "kind": "hash", "note": filler})
                for n in range(40)]
        before = table_bytes()
        start = time.perf_counter()
        post(junk)
        posted = time.perf_counter()
        drain()
        drained = time.perf_counter()
        kept = Statement.objects.filter(jti__startswith=f"{name}-").aggregate(n=Sum(Length("raw")))["n"] or 0
        out.update({f"{name}_post_ms": (posted - start) * 1000, f"{name}_verify_ms": (drained - posted) * 1000,
                    f"{name}_kept_bytes": kept, f"{name}_table_growth_bytes": table_bytes() - before})
    return out


def fresh(database_url: str, broker_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", server, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], check=True)
    subprocess.run(["redis-cli", "-u", broker_url, "flushdb"], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="baseline checkout (a git worktree)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recent", type=int, default=100_000, help="the member's statements of the last 24 hours")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_junk_bench")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--only-posts", action="store_true", help="ordinary requests only, no junk")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.recent, args.only_posts)))
        return
    checkouts = {"before": args.before.resolve(), "after": ROOT} if args.before else {"after": ROOT}
    env = {"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url, "DJANGO_SECRET_KEY": "bench", "DJANGO_SSL_REDIRECT": "false",
           "MEMBER_DAILY_STATEMENT_QUOTA": "100000000"}  # counted on every request, never reached
    results: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    for _ in range(args.rounds):
        for name, checkout in checkouts.items():
            fresh(args.database_url, args.broker_url)
            options = ["--recent", str(args.recent)] + (["--only-posts"] if args.only_posts else [])
            results[name].append(run_child(__file__, checkout, options, env))
    fresh(args.database_url, args.broker_url)
    keys = list(results["after"][0])
    print(f"{'':32}" + "".join(f"{name:>24}" for name in checkouts) + ("   after/before" if args.before else ""))
    for key in keys:
        cells = {name: [r[key] for r in rows] for name, rows in results.items()}
        text = "".join(f"{' / '.join(f'{v:.1f}' if v % 1 else str(int(v)) for v in cell):>24}" for cell in cells.values())
        if args.before:
            before, after = statistics.mean(cells["before"]), statistics.mean(cells["after"])
            text += f"   {after / before:.3f}" if before else "   -"
        print(f"{key:32}{text}")


if __name__ == "__main__":
    main()
