"""Memory of the match index per process and per host: one index per host (a snapshot file every
process maps, plus a small delta each) against one index per process (commit e8d02d9, given with
--before), with PDQ hashes stored in PostgreSQL, measured in the same run.

    .venv/bin/python bench/index_memory.py [--hashes 10000000] [--processes 8] [--before ../sharedindex-base]
        [--at-once 2] [--reuse-database]

For each checkout it starts one process, then --processes processes, --at-once at a time (so that
the baseline's builds never hold their transient memory all at once). Each process makes its index
ready and answers one query (`hashes.matching.indexes`: the first-query latency of a newly started
process). With all of them alive, this script reads Rss and Pss from /proc/<pid>/smaps_rollup:
PSS charges each shared page to its processes in equal parts, so the sum of PSS is what the host
really spends. The last process of each checkout then times single-query searches, the two taking
turns so that the machine's load weighs on both alike; then each is given a delta of
INDEX_DELTA_MAX_ROWS added rows (the most a process carries before a new snapshot; the baseline
merges its own) and the searches are timed again. Prints the figures and after/before ratios, and
checks that both checkouts return the same matches. Uses (and recreates) the database
`consortium_sharedindex_bench`."""

from __future__ import annotations

import argparse
import hashlib
import json
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
BROKER_URL = "redis://127.0.0.1:6379/4"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hashes", type=int, default=10_000_000)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--before", type=Path, default=ROOT.parent / "sharedindex-base")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_sharedindex_bench")
    parser.add_argument("--reuse-database", action="store_true",
                        help="measure with the hashes an earlier run stored, however many (--hashes is ignored)")
    parser.add_argument("--at-once", type=int, default=1,
                        help="start this many processes at a time (a baseline build holds ~3 GB at 10 M)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the queries file, in a measured process
    return parser.parse_args()


# -- a measured process ------------------------------------------------------------------------------

def child(queries_file: str) -> None:
    import django

    django.setup()
    if queries_file == "compile":
        compile_search()
        return
    from django.conf import settings

    from hashes.matching import indexes

    queries = json.loads(Path(queries_file).read_text())
    started = time.perf_counter()
    indexes.fresh()
    indexes.pdq_within(queries[0], 31)
    print(json.dumps({"first_query_seconds": time.perf_counter() - started}), flush=True)
    for q in queries:  # untimed: the pages these searches touch come into this process
        indexes.pdq_within(q, 31)
    for command in sys.stdin:
        if command.strip() == "time":
            latencies, found = [], []
            for q in queries:
                t = time.perf_counter()
                found.append(indexes.pdq_within(q, 31))
                latencies.append(time.perf_counter() - t)
            digest = hashlib.sha256(json.dumps([sorted(f.items()) for f in found]).encode()).hexdigest()
            print(json.dumps({"p50_ms": statistics.median(latencies) * 1000,
                              "mean_ms": statistics.fmean(latencies) * 1000, "digest": digest}), flush=True)
        elif command.strip() == "delta":
            rng = np.random.default_rng(99)
            rows = rng.integers(0, 2**64, size=(getattr(settings, "INDEX_DELTA_MAX_ROWS", 8192), 4), dtype=np.uint64)
            indexes.pdq.add_many(np.arange(len(rows)) + 10**12, rows)
            indexes.pdq.wait_for_merge()  # the per-process index folds its delta in; wait, as its searches would
            print(json.dumps({"delta_rows": len(rows)}), flush=True)


def compile_search() -> None:
    """Fill the checkout's numba cache, so that no measured process pays for compiling."""
    from hashes.signals.index import PdqIndex

    rows = np.random.default_rng(1).integers(0, 2**64, size=(1000, 4), dtype=np.uint64)
    index = PdqIndex.build(np.arange(1000), rows)
    index.search(rows[0], 31)
    index.search_many(rows[:20], 31)
    if hasattr(PdqIndex, "from_arrays"):  # a snapshot's arrays are read-only: a specialisation of their own
        arrays, base = index.freeze().arrays()
        for array in arrays.values():
            array.flags.writeable = False
        shared = PdqIndex.from_arrays(arrays, base)
        shared.search(rows[0], 31)
        shared.search_many(rows[:20], 31)
    print("{}")


# -- the host ------------------------------------------------------------------------------------------

def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return {"rss": fields["Rss"], "pss": fields["Pss"]}


class Process:
    def __init__(self, checkout: Path, var: str, queries_file: str, database_url: str) -> None:
        from checkouts import child_env  # same folder

        env = child_env(checkout, var, {"DATABASE_URL": database_url, "CELERY_BROKER_URL": BROKER_URL})
        self.popen = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", queries_file], cwd=checkout, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def report(self) -> dict[str, Any]:
        line = self.popen.stdout.readline()
        if not line:
            raise SystemExit(f"a measured process exited with {self.popen.wait()}")
        return json.loads(line)

    def say(self, text: str) -> None:
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def compile_numba(checkout: Path, database_url: str) -> None:
    from checkouts import run_child  # same folder

    run_child(__file__, checkout, ["compile"], {"DATABASE_URL": database_url, "CELERY_BROKER_URL": BROKER_URL})


def measure_memory(checkout: Path, var: str, processes: int, queries_file: str, database_url: str, at_once: int
                   ) -> tuple[dict[int, Any], Process]:
    """First-query latency and memory of 1, then `processes`, processes started `at_once` at a time;
    the last one is left running, for the latency measurements (each baseline start costs a build)."""
    result: dict[int, Any] = {}
    for count in (1, processes):
        running: list[Process] = []
        try:
            reports = []
            while len(running) < count:
                group = [Process(checkout, var, queries_file, database_url)
                         for _ in range(min(at_once, count - len(running)))]
                running += group
                reports += [process.report() for process in group]
            result[count] = {"reports": reports, "memory": [memory_kib(p.popen.pid) for p in running]}
        finally:
            kept = running.pop() if count == processes and len(running) == count else None
            for process in running:
                process.stop()
    assert kept is not None
    return result, kept


def measure_latency(processes: dict[str, Process], rounds: int = 5) -> dict[str, dict[str, float]]:
    """Timed passes over the queries, taken in turns by each checkout's process (the machine's load
    then weighs on both alike); the median over the rounds."""
    passes: dict[str, list[dict[str, Any]]] = {label: [] for label in processes}
    for _ in range(rounds):
        for label, process in processes.items():
            process.say("time")
            passes[label].append(process.report())
    return {label: {"p50_ms": statistics.median(p["p50_ms"] for p in found),
                    "mean_ms": statistics.median(p["mean_ms"] for p in found), "digests": {p["digest"] for p in found}}
            for label, found in passes.items()}


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(ROOT))
    from match_api import near_queries, stored_corpus  # same folder

    rng = np.random.default_rng(7)
    values, _ = stored_corpus(args.database_url, args.hashes, rng, BROKER_URL, reuse=args.reuse_database)
    queries, _ = near_queries(values, args.queries, rng)
    args.hashes = len(values)
    del values
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(queries, handle)
    checkouts = {"before": args.before.resolve(), "after": ROOT}
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as before_var, tempfile.TemporaryDirectory() as after_var:
            host = {"before": before_var, "after": after_var}  # after's snapshot lives through every phase
            lone: dict[str, Process] = {}
            try:
                for label, checkout in checkouts.items():
                    compile_numba(checkout, args.database_url)
                    results[label], lone[label] = measure_memory(
                        checkout, host[label], args.processes, handle.name, args.database_url, args.at_once)
                results["latency"] = measure_latency(lone)
                for process in lone.values():
                    process.say("delta")
                    results["delta_rows"] = process.report()["delta_rows"]
                results["latency_delta"] = measure_latency(lone)
            finally:
                for process in lone.values():
                    process.stop()
    finally:
        os.unlink(handle.name)
    print_table(args, results)


def print_table(args: argparse.Namespace, results: dict[str, Any]) -> None:
    n = args.processes

    def gib(kib: float) -> str:
        return f"{kib / 2**20:.2f} GiB"

    def per_process(label: str, count: int, kind: str) -> float:
        return statistics.fmean(m[kind] for m in results[label][count]["memory"])

    def host(label: str, count: int, kind: str) -> float:
        return sum(m[kind] for m in results[label][count]["memory"])

    rows: list[tuple[str, float, float, Any]] = []
    for count in (1, n):
        for kind in ("rss", "pss"):
            rows.append((f"{kind.upper()} per process, {count} process(es)", per_process("before", count, kind),
                         per_process("after", count, kind), gib))
        rows.append((f"host total PSS, {count} process(es)", host("before", count, "pss"), host("after", count, "pss"),
                     gib))
    first = {label: [r["first_query_seconds"] for r in results[label][n]["reports"]] for label in ("before", "after")}
    rows += [
        ("first query, first process of the host", results["before"][1]["reports"][0]["first_query_seconds"],
         results["after"][1]["reports"][0]["first_query_seconds"], lambda s: f"{s:.2f} s"),
        (f"first query, a process joining ({n} started, {args.at_once} at a time, mean)", statistics.fmean(first["before"]),
         statistics.fmean(first["after"]), lambda s: f"{s:.2f} s"),
    ]
    for key in ("p50_ms", "mean_ms"):
        rows.append((f"search latency {key[:-3]}", results["latency"]["before"][key],
                     results["latency"]["after"][key], lambda ms: f"{ms:.3f} ms"))
        rows.append((f"search latency {key[:-3]}, with a delta of {results['delta_rows']:,} rows",
                     results["latency_delta"]["before"][key], results["latency_delta"]["after"][key],
                     lambda ms: f"{ms:.3f} ms"))
    digests = set().union(*(results[phase][label]["digests"] for phase in ("latency", "latency_delta")
                            for label in ("before", "after")))
    print(f"\n{args.hashes:,} PDQ hashes in PostgreSQL; before = {args.before} (one index per process), "
          f"after = this checkout (one per host); load average {os.getloadavg()[0]:.1f} (shared machine)")
    print(f"{'':64} {'before':>12} {'after':>12} {'after/before':>13}")
    for name, before, after, shown in rows:
        print(f"{name:64} {shown(before):>12} {shown(after):>12} {after / before:>13.3f}")
    print(f"same matches for every query in every process, before and after: {'yes' if len(digests) == 1 else 'NO'}")


if __name__ == "__main__":
    main()
