"""Media and match bombs against one or two checkouts: status, response size, peak memory and time.

    .venv/bin/python bench/media_bombs.py [--before /tmp/media-before] [--only CASE ...]

Builds every bomb itself (a 13000x13000 1-bit PNG of about 20 KB, an MKV holding one 8000x8000
frame, a 300 MiB upload streamed from a generator, a 20,000-frame vPDQ match query, and a 633-byte
match request repeating one PDQ query), then sends each through the Django test client in a child
process of its own, against this checkout and, with --before, an older one (for example
`git worktree add /tmp/media-before 8ce8eca`), both with this interpreter. Each child migrates a
fresh SQLite database under a temporary CONSORTIUM_VAR_DIR (shared by the cases of one checkout),
and the match cases store their corpus first through the real pipeline. Peak RSS is the child's
ru_maxrss after the request; "idle" is the same child's just before it, everything imported and
the match index built, so the difference is what the request itself took.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("png_pixel_bomb", "mkv_8000x8000", "upload_300mib", "vpdq_20000_frames", "repeated_queries")
UPLOAD_BYTES = 300 * 1024 * 1024
QUERY_PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
STORED_PDQ_HASHES = 400  # each within 31 bits of QUERY_PDQ, each with a 2,000-character note
STORED_VIDEOS = 5  # 3,000 distinct frames each; the 20,000-frame query holds all of them and 5,000 more
FRAMES_PER_VIDEO = 3000
QUERY_FRAMES = 20_000


# --- the bombs ----------------------------------------------------------------------------------

def png_pixel_bomb() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (13000, 13000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def mkv_one_huge_frame(side: int = 8000) -> bytes:
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), 128, np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return out.getvalue()


def random_hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def near(value: str, bits: list[int]) -> str:
    number = int(value, 16)
    for bit in bits:
        number ^= 1 << bit
    return f"{number:064x}"


def video_frames(video: int) -> list[dict]:
    rng = random.Random(video)
    return [{"i": i, "t": round(i / 30, 3), "pdq": random_hex(rng), "q": 90} for i in range(FRAMES_PER_VIDEO)]


def vpdq_query() -> dict:
    pdqs = [f["pdq"] for v in range(STORED_VIDEOS) for f in video_frames(v)]
    rng = random.Random(-1)
    pdqs += [random_hex(rng) for _ in range(QUERY_FRAMES - len(pdqs))]
    return {"signals": [{"type": "vpdq", "frames": [{"i": i, "t": round(i / 30, 3), "pdq": p, "q": 90}
                                                    for i, p in enumerate(pdqs)]}]}


def repeated_query() -> bytes:
    body = json.dumps({"signals": [{"type": "pdq", "value": QUERY_PDQ}] * 7}, separators=(",", ":"))
    return body.encode()


class MultipartStream:
    """A multipart body holding one `size`-byte file, produced only as it is read, counting reads."""

    def __init__(self, size: int) -> None:
        self.head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
                     b"Content-Type: application/octet-stream\r\n\r\n")
        self.tail = b"\r\n--b--\r\n"
        self.size = len(self.head) + size + len(self.tail)
        self.position = 0

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.position if n is None or n < 0 else min(n, self.size - self.position)
        start, self.position = self.position, self.position + n
        body_end = self.size - len(self.tail)
        out = bytearray()
        if start < len(self.head):
            out += self.head[start:min(len(self.head), start + n)]
        middle = max(0, min(start + n, body_end) - max(start, len(self.head)))
        out += b"\0" * middle
        if start + n > body_end:
            out += self.tail[max(0, start - body_end):start + n - body_end]
        return bytes(out)

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


# --- the child: one case against one checkout ----------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    through fork and exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(case: str, work: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")
    import django

    django.setup()
    from django.core.management import call_command

    if case == "setup":
        call_command("migrate", verbosity=0)
        seed(work)
        return
    from rest_framework.test import APIClient

    token = (work / "token").read_text()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    from hashes.matching import indexes

    indexes.fresh()  # built before measuring: the cost being measured is the request's own
    import av  # noqa: F401  (imported by the media endpoints; loaded now so that idle counts it)
    import PIL.Image  # noqa: F401

    extra: dict = {}
    idle = peak_rss_mb()
    started = time.perf_counter()
    if case in ("png_pixel_bomb", "mkv_8000x8000"):
        name = "bomb.png" if case == "png_pixel_bomb" else "bomb.mkv"
        with open(work.parent / name, "rb") as handle:
            response = api.post("/api/v1/hash/", {"file": handle}, format="multipart")
    elif case == "upload_300mib":
        body = MultipartStream(UPLOAD_BYTES)
        response = api.generic("POST", "/api/v1/hash/", content_type="multipart/form-data; boundary=b",
                               CONTENT_LENGTH=str(body.size), **{"wsgi.input": body})
        extra["bytes_read"] = body.position
    elif case == "vpdq_20000_frames":
        response = api.post("/api/v1/match/", (work.parent / "vpdq_query.json").read_bytes(),
                            content_type="application/json")
    else:
        raw = repeated_query()
        extra["request_bytes"] = len(raw)
        response = api.post("/api/v1/match/", raw, content_type="application/json")
    elapsed = time.perf_counter() - started
    content = response.content
    peak = peak_rss_mb()
    try:
        code = json.loads(content).get("error", {}).get("code", "")
    except ValueError:
        code = "not json"
    print(json.dumps({"status": response.status_code, "code": code, "response_bytes": len(content),
                      "idle_mb": idle, "peak_mb": peak, "seconds": elapsed, **extra}))


def seed(work: Path) -> None:
    """bob asks; alice stores the PDQ hashes and the videos the match cases find."""
    sys.path.insert(0, str(Path.cwd()))
    from hashes.services.pipeline import drain
    from tests.actors import make_actor

    alice, bob = make_actor("alice"), make_actor("bob")
    (work / "token").write_text(bob.token)
    rng = random.Random(1)
    statements = [
        alice.statement([{"type": "pdq", "value": near(QUERY_PDQ, rng.sample(range(256), 15)), "quality": 90}],
                        note="n" * 2000)
        for _ in range(STORED_PDQ_HASHES)
    ]
    statements += [alice.statement([{"type": "vpdq", "frames": video_frames(v)}], content_type="video")
                   for v in range(STORED_VIDEOS)]
    for start in range(0, len(statements), 200):
        alice.submit(*statements[start:start + 200])
    drain()
    from django.db.models import Count

    from hashes.models import Hash, Statement

    states = dict(Statement.objects.values_list("state").annotate(n=Count("id")))
    print(json.dumps({"statements": states, "hashes": Hash.objects.count()}), file=sys.stderr)


def run_child(tree: Path, case: str, work: Path) -> dict:
    env = {**os.environ, "CONSORTIUM_VAR_DIR": str(work), "PYTHONPATH": str(tree), "INDEX_WARM_ON_START": "false",
           "LOG_LEVEL": "ERROR", "PYTHONDONTWRITEBYTECODE": "1",
           "DJANGO_ALLOWED_HOSTS": "localhost,testserver"}
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", case, "--work", str(work)],
                            cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return {"status": "crash", "code": result.stderr.strip().splitlines()[-1][:60] if result.stderr else "",
                "response_bytes": 0, "idle_mb": 0, "peak_mb": 0, "seconds": 0}
    return json.loads(result.stdout.strip().splitlines()[-1]) if case != "setup" else {}


# --- the parent ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    parser.add_argument("--only", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--child")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work)
        return
    trees = ({"before": args.before.resolve()} if args.before else {}) | {"after": ROOT}
    scratch = Path(tempfile.mkdtemp(prefix="media-bombs-"))
    try:
        (scratch / "bomb.png").write_bytes(png_pixel_bomb())
        (scratch / "bomb.mkv").write_bytes(mkv_one_huge_frame())
        (scratch / "vpdq_query.json").write_text(json.dumps(vpdq_query()))
        print(f"bombs: PNG {(scratch / 'bomb.png').stat().st_size} B, MKV {(scratch / 'bomb.mkv').stat().st_size} B, "
              f"upload {UPLOAD_BYTES} B, vPDQ query {(scratch / 'vpdq_query.json').stat().st_size} B, "
              f"repeated query {len(repeated_query())} B", flush=True)
        results: dict[str, dict[str, dict]] = {}
        for label, tree in trees.items():
            work = scratch / label
            work.mkdir()
            run_child(tree, "setup", work)
            for case in args.only:
                results.setdefault(case, {})[label] = run_child(tree, case, work)
                print(label, case, json.dumps(results[case][label]), flush=True)
        report(results, list(trees))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(results: dict[str, dict[str, dict]], labels: list[str]) -> None:
    print()
    print("| case | " + " | ".join(f"{label}: status code / response B / peak RSS MB (request) / s"
                                    for label in labels) + (" | ratio peak, request MB, time" if len(labels) > 1 else "") + " |")
    print("|" + "---|" * (len(labels) + 1 + (len(labels) > 1)))
    for case, by_label in results.items():
        cells = []
        for label in labels:
            r = by_label[label]
            request_mb = r["peak_mb"] - r["idle_mb"]
            extra = f", read {r['bytes_read']:,} B" if "bytes_read" in r else ""
            cells.append(f"{r['status']} {r['code']} / {r['response_bytes']:,} / {r['peak_mb']:.0f} "
                         f"(+{request_mb:.0f}) / {r['seconds']:.2f}{extra}")
        line = f"| {case} | " + " | ".join(cells)
        if len(labels) > 1:
            after, before = by_label["after"], by_label["before"]
            ratio = lambda b, a: f"{b / a:.1f}x" if a > 0 else "n/a"  # noqa: E731
            line += (f" | {ratio(before['peak_mb'], after['peak_mb'])}, "
                     f"{ratio(before['peak_mb'] - before['idle_mb'], max(after['peak_mb'] - after['idle_mb'], 1))}, "
                     f"{ratio(before['seconds'], after['seconds'])}")
        print(line + " |")


if __name__ == "__main__":
    main()
