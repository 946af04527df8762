"""Media job benchmark: a synthetic 720p H.264 video of 17 minutes (and one of 1 minute), hashed end
to end through the job API (POST hash/jobs/ to gunicorn, the `media` worker of deploy/Procfile, GET
until done), against vpdq's own hasher and PyAV's decoding alone on the same 720p video, in the
same run.

    .venv/bin/python bench/media_job.py [--minutes 17] [--short-minutes 1]

Videos are made by the benchmark (PyAV, libx264) and cached under var/bench-videos/. For each, a
fresh media worker is started, so its figures are its own: wall time (upload to answer), CPU time
and peak resident memory (VmHWM, which is ru_maxrss) of the worker's pool processes, the job's own
frames per second. The references run in a child process each on the short video: vpdq
(`vpdq.computeHash`, every frame, its default threads) where it is installed, and PyAV decoding
every frame with no conversion or hashing. Memory that does not grow with duration shows as the
same peak for 1 and 17 minutes.

Needs PostgreSQL and Redis on 127.0.0.1: recreates the database `consortium_media_bench`, uses
Redis database 6. The machine's load average is printed with the figures: they share the machine
with everything else running on it."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "client"))

from bench.checkouts import UNTHROTTLED  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")

VPDQ_CHILD = """
import json, resource, sys, time
try:
    import vpdq
except ImportError:
    print(json.dumps(None)); sys.exit()
start = time.perf_counter()
frames = vpdq.computeHash(sys.argv[1], seconds_per_hash=0)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_kib": usage.ru_maxrss, "frames": len(frames)}))
"""
DECODE_CHILD = """
import json, resource, sys, time
import av
start = time.perf_counter()
with av.open(sys.argv[1]) as container:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = 2
    frames = sum(1 for _ in container.decode(stream))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - start, "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_kib": usage.ru_maxrss, "frames": frames}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=17)
    parser.add_argument("--short-minutes", type=float, default=1)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/consortium_media_bench")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/6")
    return parser.parse_args()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pool_processes(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def process_figures(pid: int) -> tuple[float, int]:
    """CPU seconds (all threads) and peak resident KiB (VmHWM) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return cpu, peak


def hash_through_the_api(stack, token: str, video: Path) -> dict[str, Any]:
    from consortium_client.http import ConsortiumClient
    from media.models import MediaJob

    stack.start("media")
    media_pid = stack.processes["media"].pid
    deadline = time.monotonic() + 120
    while len(pool_processes(media_pid)) < 2:  # --concurrency 2, each having imported Django
        if time.monotonic() > deadline:
            raise SystemExit(f"the media worker did not start:\n{stack.logs('media')}")
        time.sleep(0.2)
    time.sleep(2)
    idle = {pid: process_figures(pid) for pid in [media_pid, *pool_processes(media_pid)]}
    api = ConsortiumClient(stack.base_url, token, timeout=600)
    start = time.perf_counter()
    job_id = api.hash_job_start(video)["id"]
    uploaded = time.perf_counter() - start
    while (body := api.hash_job(job_id))["state"] not in ("done", "failed"):
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if body["state"] != "done":
        raise SystemExit(f"the job failed: {body['error']}")
    after = {pid: process_figures(pid) for pid in idle}
    stack.kill("media")
    job = MediaJob.objects.get(pk=job_id)
    busiest = max(after, key=lambda pid: after[pid][0] - idle[pid][0])
    return {
        "frames": body["frame_page"]["total"], "bytes": video.stat().st_size,
        "wall": wall, "upload": uploaded, "job": (job.finished_at - job.started_at).total_seconds(),
        "cpu": sum(after[pid][0] - idle[pid][0] for pid in idle),
        "peak_kib": after[busiest][1], "idle_kib": idle[busiest][1],
        "answer_bytes": len(json.dumps(body)),  # the first page: MEDIA_JOB_PAGE_FRAMES frames at most
    }


def reference(code: str, video: Path) -> dict[str, Any] | None:
    done = subprocess.run([sys.executable, "-c", code, str(video)], capture_output=True, text=True, check=True,
                          timeout=7200)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    from tests.media.videos import cached_video

    folder = ROOT / "var" / "bench-videos"
    folder.mkdir(parents=True, exist_ok=True)
    videos = {}
    for minutes in (args.short_minutes, args.minutes):
        start = time.perf_counter()
        videos[minutes] = cached_video(folder, seconds=minutes * 60, width=args.width, height=args.height)
        print(f"video of {minutes:g} min: {videos[minutes].stat().st_size / 1e6:.0f} MB "
              f"(made or found in {time.perf_counter() - start:.0f} s)", flush=True)

    from bench.ingest import recreate_database

    recreate_database(args.database_url)
    # The processes started import this checkout's client package (the hasher), not an installed one.
    client_path = os.pathsep.join([str(ROOT / "client"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    os.environ.update({"DATABASE_URL": args.database_url, "CELERY_BROKER_URL": args.broker_url,
                       "DJANGO_SETTINGS_MODULE": "consortium.settings", "PYTHONPATH": client_path})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True)
    import django

    django.setup()
    from tests.actors import make_actor
    from tests.e2e.stack import Stack

    member = make_actor("bench-media")
    largest = max(video.stat().st_size for video in videos.values())
    overrides = {"MEDIA_MAX_BYTES": str(largest + (1 << 20)), "GUNICORN_TIMEOUT": "600", **UNTHROTTLED}
    results = {}
    print(f"machine load before (1/5/15 min): {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "var").mkdir()
        stack = Stack(workdir=Path(workdir), overrides=overrides)
        stack.purge_broker()
        stack.start("web")
        try:
            stack.wait_for_web()
            for minutes, video in videos.items():
                results[minutes] = hash_through_the_api(stack, member.token, video)
                print(f"{minutes:g} min through the job API: {json.dumps(results[minutes])}", flush=True)
        finally:
            stack.stop()
    short = videos[args.short_minutes]
    vpdq_figures = reference(VPDQ_CHILD, short)
    print(f"vpdq on {args.short_minutes:g} min: {json.dumps(vpdq_figures)}", flush=True)
    decode = reference(DECODE_CHILD, short)
    print(f"PyAV decoding alone on {args.short_minutes:g} min: {json.dumps(decode)}", flush=True)
    print(f"machine load after (1/5/15 min):  {loadavg()}", flush=True)
    report(args, results, vpdq_figures, decode)


def report(args, results, vpdq_figures, decode) -> None:
    print(f"\n{args.width}x{args.height} H.264, 30 frames/s, every frame hashed")
    print("| | frames | wall | frames/s | CPU | CPU ms/frame | peak RSS (idle) |")
    print("|---|---|---|---|---|---|---|")
    for minutes, r in results.items():
        print(f"| job API, {minutes:g} min | {r['frames']:,} | {r['wall']:.0f} s (upload {r['upload']:.1f} s) | "
              f"{r['frames'] / r['wall']:.0f} | {r['cpu']:.0f} s | {1000 * r['cpu'] / r['frames']:.1f} | "
              f"{r['peak_kib'] / 1024:.0f} MiB ({r['idle_kib'] / 1024:.0f}) |")
    for name, ref in (("vpdq", vpdq_figures), ("PyAV decode only", decode)):
        if ref:
            print(f"| {name}, {args.short_minutes:g} min | {ref['frames']:,} | {ref['wall']:.0f} s | "
                  f"{ref['frames'] / ref['wall']:.0f} | {ref['cpu']:.0f} s | {1000 * ref['cpu'] / ref['frames']:.1f} | "
                  f"{ref['peak_kib'] / 1024:.0f} MiB |")
    long = results[args.minutes]
    rate = long["frames"] / long["wall"]
    if vpdq_figures:
        print(f"\njob API ({args.minutes:g} min) vs vpdq: {rate / (vpdq_figures['frames'] / vpdq_figures['wall']):.2f}x "
              f"the frame rate, {(long['cpu'] / long['frames']) / (vpdq_figures['cpu'] / vpdq_figures['frames']):.2f}x "
              "the CPU per frame")
    print(f"job API ({args.minutes:g} min) vs PyAV decoding alone: "
          f"{(decode['frames'] / decode['wall']) / rate:.2f}x the wall time per frame, "
          f"{(long['cpu'] / long['frames']) / (decode['cpu'] / decode['frames']):.2f}x the CPU per frame")
    short = results[args.short_minutes]
    print(f"peak memory, {args.minutes:g} min vs {args.short_minutes:g} min: {long['peak_kib'] / short['peak_kib']:.2f}x "
          f"({long['peak_kib'] / 1024:.0f} vs {short['peak_kib'] / 1024:.0f} MiB; the answer's first page is "
          f"{long['answer_bytes'] / 1e6:.1f} vs {short['answer_bytes'] / 1e6:.1f} MB of JSON)")


if __name__ == "__main__":
    main()
