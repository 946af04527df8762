"""Benchmark the PDQ match index against faiss' flat scan and python-threatexchange's PDQIndex.

    .venv/bin/python bench/match.py [--sizes 1000000,10000000] [--quick]

For each size, two corpora are made (uniform random hashes, and clustered ones: variant families
within a few bits of a centre plus near-blank clumps), with the brute-force answers to the first
queries. A child process per corpus then builds every engine on the same hashes, one after the
other, each build's memory being the growth of the process's RSS, with freed heap handed back to
the kernel before and after each build. Single queries run in turns of 50 per engine, so that
whatever else the machine is doing slows every engine alike; batches run twice each, alternating,
and the better run counts. All answer radius <= 31 (faiss counts d < radius, so it is asked for
32). Engines are built from the hex strings a database would hand them and single queries are hex
strings, so parsing is included everywhere.

Baselines need the packages in bench/requirements.txt; a missing one is skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hashes.signals.pdq import hamming_distances, rows_to_hexes  # noqa: E402

RADIUS = 31
ENGINES = ("ours", "faiss-flat", "pdqindex")
TITLES = {"ours": "ours (PdqIndex)", "faiss-flat": "faiss IndexBinaryFlat", "pdqindex": "threatexchange PDQIndex"}
# Adding to PDQIndex rebuilds its id map (about a second at 1 M), so it gets few tries.
ADD_TRIES = {"ours": 1000, "faiss-flat": 200, "pdqindex": 3}
# Engines take turns by blocks of queries: long enough for each to run with its own data in cache,
# as a dedicated matcher would, short enough that a burst of other load hits every engine.
LATENCY_BLOCK = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma-separated corpus sizes (default 1000000,10000000; --quick: 1000000)")
    parser.add_argument("--quick", action="store_true", help="fewer queries, one size unless --sizes is given")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    parser.add_argument("--corpora", default="random,clustered", help="subset of random,clustered")
    parser.add_argument("--queries", type=int, help="queries per corpus (default 1000; --quick: 300)")
    parser.add_argument("--recall-queries", type=int, help="queries checked by brute force (default 200; --quick: 100)")
    parser.add_argument("--seed", type=int, default=20190315)
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run_engines(args.child.split(","), args.data)))
        return
    sizes = [int(s) for s in (args.sizes or ("1000000" if args.quick else "1000000,10000000")).split(",")]
    queries = args.queries or (300 if args.quick else 1000)
    recall_queries = min(queries, args.recall_queries or (100 if args.quick else 200))
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    _print_machine()
    everything: list[dict[str, Any]] = []
    rng = np.random.default_rng(args.seed)
    for size in sizes:
        for corpus in args.corpora.split(","):
            with tempfile.TemporaryDirectory(prefix="bench-match-") as tmp:
                data = Path(tmp)
                started = time.perf_counter()
                _write_corpus(data, corpus, size, queries, recall_queries, rng)
                print(f"\n## {size:,} hashes, {corpus} (data and brute force: {time.perf_counter() - started:.0f} s)")
                results = {}
                for engine, result in _run_child(engines, data).items():
                    if "skipped" in result:
                        print(f"- {TITLES[engine]}: skipped, {result['skipped']}")
                        continue
                    results[engine] = result
                    everything.append({"size": size, "corpus": corpus, "engine": engine, **result})
                _print_table(results)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))


def _print_machine() -> None:
    import numba

    print(f"# PDQ match benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, numba {numba.__version__}")


def _write_corpus(
    data: Path, corpus: str, size: int, queries: int, recall_queries: int, rng: np.random.Generator
) -> None:
    rows = _clustered(rng, size) if corpus == "clustered" else _random(rng, size)
    near = _flip_some(rng, rows[rng.integers(0, size, queries // 2)], 16)
    query_rows = np.concatenate([near, _random(rng, queries - len(near))])
    rng.shuffle(query_rows)
    np.save(data / "rows.npy", rows)
    np.save(data / "queries.npy", query_rows)
    np.save(data / "adds.npy", _random(rng, max(ADD_TRIES.values())))
    truth = [np.flatnonzero(hamming_distances(q, rows) <= RADIUS) for q in query_rows[:recall_queries]]
    np.save(data / "truth_counts.npy", np.array([len(t) for t in truth], dtype=np.int64))
    np.save(data / "truth_ids.npy", np.concatenate(truth) if truth else np.empty(0, dtype=np.int64))


def _random(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)


def _flip_some(rng: np.random.Generator, rows: np.ndarray, most: int) -> np.ndarray:
    """Each row with 0..most random bits flipped (a repeated position flips once, or not)."""
    rows = rows.copy()
    flips = rng.integers(0, most + 1, size=len(rows))
    everyone = np.arange(len(rows))
    for step in range(most):
        who = everyone[flips > step]
        bits = rng.integers(0, 256, size=len(who))
        rows[who, bits >> 6] ^= np.uint64(1) << (bits & 63).astype(np.uint64)
    return rows


def _clustered(rng: np.random.Generator, n: int) -> np.ndarray:
    """70 % in variant families (mean size 20, up to 8 bits from the centre), 1 % in eight
    near-blank clumps (up to 4 bits from a low-entropy hash), the rest uniform."""
    in_families = int(n * 0.70)
    in_clumps = n // 100
    centres = _random(rng, max(1, in_families // 20))
    family = _flip_some(rng, centres[rng.integers(0, len(centres), in_families)], 8)
    patterns = np.array(
        [[0] * 4, [2**64 - 1] * 4, [0x00FF00FF00FF00FF] * 4, [0xFFFF0000FFFF0000] * 4,
         [0] * 2 + [2**64 - 1] * 2, [0x5555555555555555] * 4, [0x0F0F0F0F0F0F0F0F] * 4, [1, 0, 0, 0]],
        dtype=np.uint64,
    )
    clumps = _flip_some(rng, patterns[rng.integers(0, len(patterns), in_clumps)], 4)
    rows = np.concatenate([family, clumps, _random(rng, n - in_families - in_clumps)])
    rng.shuffle(rows)
    return rows


def _run_child(engines: list[str], data: Path) -> dict[str, dict[str, Any]]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", ",".join(engines), "--data", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {engine: {"skipped": f"the run failed:\n{done.stderr.strip()[-2000:]}"} for engine in engines}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _trim_heap() -> None:
    # Hand freed heap pages back to the kernel, so that an engine built after another does not
    # reuse its predecessor's freed memory unseen by RSS, and transient build buffers do not count.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _run_engines(names: list[str], data: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    engines: dict[str, Any] = {}
    for name in names:
        try:
            engines[name] = {"ours": _Ours, "faiss-flat": _FaissFlat, "pdqindex": _PdqIndex}[name]()
        except ImportError as exc:
            results[name] = {"skipped": f"{exc.name or exc} is not installed (pip install -r bench/requirements.txt)"}
    rows = np.load(data / "rows.npy")
    queries = np.load(data / "queries.npy")
    adds = np.load(data / "adds.npy")
    hexes = rows_to_hexes(rows)
    query_hexes = rows_to_hexes(queries)
    ids = np.arange(len(rows), dtype=np.int64)
    del rows
    for name, engine in engines.items():
        gc.collect()
        _trim_heap()
        before = _rss()
        started = time.perf_counter()
        engine.build(ids, hexes)
        build_seconds = time.perf_counter() - started
        gc.collect()
        _trim_heap()
        memory = _rss() - before
        results[name] = {"build_s": build_seconds, "rss_mb": memory / 2**20, "bytes_per_hash": memory / len(ids)}
        for query in query_hexes[:20]:
            engine.search(query)
    latencies: dict[str, list[float]] = {name: [] for name in engines}
    found: dict[str, list[Any]] = {name: [] for name in engines}
    for start in range(0, len(query_hexes), LATENCY_BLOCK):
        for name, engine in engines.items():
            for query in query_hexes[start : start + LATENCY_BLOCK]:
                started = time.perf_counter()
                result = engine.search(query)
                latencies[name].append(time.perf_counter() - started)
                found[name].append(result)
    batch_seconds: dict[str, float] = {name: float("inf") for name in engines}
    batches: dict[str, list[Any]] = {}
    for _ in range(2):
        for name, engine in engines.items():
            started = time.perf_counter()
            batches[name] = engine.search_many(query_hexes, queries)
            batch_seconds[name] = min(batch_seconds[name], time.perf_counter() - started)
    for name, engine in engines.items():
        recall, extra = _recall(found[name], data)
        batch_recall, _ = _recall(batches[name], data)
        add_times = []
        for i, row in enumerate(adds[: ADD_TRIES[name]]):
            text = row.tobytes().hex()
            started = time.perf_counter()
            engine.add(len(ids) + i, text)
            add_times.append(time.perf_counter() - started)
        results[name].update(
            {
                "p50_ms": float(np.percentile(latencies[name], 50)) * 1e3,
                "p99_ms": float(np.percentile(latencies[name], 99)) * 1e3,
                "batch_qps": len(query_hexes) / batch_seconds[name],
                "add_p50_ms": float(np.median(add_times)) * 1e3,
                "add_max_ms": max(add_times) * 1e3,
                "added_found": len(ids) in set(int(x) for x in engine.search(adds[0].tobytes().hex())),
                "recall": recall,
                "batch_recall": batch_recall,
                "false_matches": extra,
                "mean_matches": float(np.mean([len(f) for f in found[name]])),
                **engine.extra(),
            }
        )
    return {name: results[name] for name in names}


def _recall(found: list[Any], data: Path) -> tuple[float, int]:
    counts = np.load(data / "truth_counts.npy")
    truth_ids = np.load(data / "truth_ids.npy")
    hit = total = extra = 0
    start = 0
    for i, count in enumerate(counts):
        truth = set(truth_ids[start : start + count].tolist())
        start += count
        mine = set(int(x) for x in found[i])
        hit += len(truth & mine)
        total += len(truth)
        extra += len(mine - truth)
    return (hit / total if total else 1.0), extra


class _Ours:
    def __init__(self) -> None:
        from hashes.signals.index import PdqIndex

        # Load the compiled kernels now, so that the build and the first query measure work only.
        warm = PdqIndex.build([1, 2], ["0" * 64, "f" * 64])
        warm.search("0" * 64)
        warm.search_many(["0" * 64])
        warm.add(3, "1" * 64)
        self._class = PdqIndex

    def build(self, ids: np.ndarray, hexes: list[str]) -> None:
        self.index = self._class.build(ids, hexes)

    def search(self, query: str) -> np.ndarray:
        return self.index.search(query).ids

    def search_many(self, queries: list[str], rows: np.ndarray) -> list[np.ndarray]:
        return [m.ids for m in self.index.search_many(rows)]

    def add(self, id_: int, hash_: str) -> None:
        self.index.add(id_, hash_)

    def extra(self) -> dict[str, Any]:
        return {"index_bytes_per_hash": self.index.nbytes / len(self.index)}


class _FaissFlat:
    def __init__(self) -> None:
        import faiss

        self._faiss = faiss

    def build(self, ids: np.ndarray, hexes: list[str]) -> None:
        vectors = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(len(hexes), 32)
        self.index = self._faiss.IndexBinaryFlat(256)
        self.index.add(vectors)

    def search(self, query: str) -> np.ndarray:
        vector = np.frombuffer(bytes.fromhex(query), dtype=np.uint8).reshape(1, 32)
        _, _, found = self.index.range_search(vector, RADIUS + 1)
        return found

    def search_many(self, queries: list[str], rows: np.ndarray) -> list[np.ndarray]:
        limits, _, found = self.index.range_search(rows.view(np.uint8).reshape(len(rows), 32), RADIUS + 1)
        return [found[limits[i] : limits[i + 1]] for i in range(len(rows))]

    def add(self, id_: int, hash_: str) -> None:
        self.index.add(np.frombuffer(bytes.fromhex(hash_), dtype=np.uint8).reshape(1, 32))

    def extra(self) -> dict[str, Any]:
        return {"faiss_threads": self._faiss.omp_get_max_threads()}


class _PdqIndex:
    def __init__(self) -> None:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex

        self._class = PDQIndex

    def build(self, ids: np.ndarray, hexes: list[str]) -> None:
        self.index = self._class(entries=zip(hexes, ids.tolist(), strict=True))

    def search(self, query: str) -> list[int]:
        return [match.metadata for match in self.index.query(query)]

    def search_many(self, queries: list[str], rows: np.ndarray) -> list[list[int]]:
        # What HMA does for a batch: one faiss call for every query, ids mapped back to entries.
        found = self.index.index.search(queries, RADIUS, return_as_ids=True)
        return [[self.index.local_id_to_entry[i][1] for i in ids] for ids in found]

    def add(self, id_: int, hash_: str) -> None:
        self.index.add(hash_, id_)

    def extra(self) -> dict[str, Any]:
        return {"note": "RSS excludes the hex strings it keeps a reference to (113 bytes each)"}


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    if not results:
        return
    header = ("engine", "build s", "RSS MB", "B/hash", "p50 ms", "p99 ms", "batch q/s", "add p50 ms",
              "add max ms", "recall", "matches/q")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for engine, r in results.items():
        cells = (TITLES[engine], f"{r['build_s']:.1f}", f"{r['rss_mb']:.0f}", f"{r['bytes_per_hash']:.0f}",
                 f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['batch_qps']:,.0f}", f"{r['add_p50_ms']:.3f}",
                 f"{r['add_max_ms']:.3f}", f"{r['recall']:.4f}", f"{r['mean_matches']:.1f}")
        print("| " + " | ".join(cells) + " |")
    ours = results.get("ours")
    if ours:
        print(f"- ours: index arrays {ours['index_bytes_per_hash']:.1f} bytes a hash at this size (96 a hash plus "
              f"8.4 MB of chunk offsets and the delta buffer); false matches {ours['false_matches']}; "
              f"batch recall {ours['batch_recall']:.4f}")
        for engine in ("faiss-flat", "pdqindex"):
            other = results.get(engine)
            if other:
                print(f"- ours vs {TITLES[engine]}: "
                      f"p50 {_factor(other['p50_ms'], ours['p50_ms'], 'faster', 'slower')}, "
                      f"p99 {_factor(other['p99_ms'], ours['p99_ms'], 'faster', 'slower')}, "
                      f"batch {_factor(ours['batch_qps'], other['batch_qps'], 'more queries/s', 'fewer queries/s')}, "
                      f"build {_factor(other['build_s'], ours['build_s'], 'faster', 'slower')}, "
                      f"memory {_factor(other['rss_mb'], ours['rss_mb'], 'less', 'more')}, "
                      f"add {_factor(other['add_p50_ms'], ours['add_p50_ms'], 'faster', 'slower')}")
    sys.stdout.flush()


def _factor(theirs: float, ours: float, better: str, worse: str) -> str:
    """How many times better (or worse) ours is, for a figure where lower `ours` is better."""
    if theirs >= ours:
        return f"{theirs / max(ours, 1e-9):.1f}x {better}"
    return f"{ours / max(theirs, 1e-9):.1f}x {worse}"


if __name__ == "__main__":
    main()
