"""One member's vPDQ flood against another member's statement: how long publishing takes.

    .venv/bin/python bench/vpdq_flood.py [--before /tmp/flood-before] [--videos 12] [--frames 3800]

A flooding member submits videos of --frames frames that all share one frame (and nothing else),
and another member one MD5 statement, submitted last. All are verified, then published in one
batch: the figure is how long publishing held the feed lock, which is how long the other member's
statement (and every other member's) waited behind the flood. Runs in a child process per checkout, on a fresh SQLite
database under a temporary CONSORTIUM_VAR_DIR; with --before, the same against an older checkout
(`git worktree add /tmp/flood-before <commit>`), with this interpreter, and prints the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkouts import run_child  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def frame(*seed: object) -> str:
    return hashlib.sha256(repr(seed).encode()).hexdigest()


def child(videos: int, frames: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from hashes.models import Statement
    from hashes.services import publishing, verification
    from hashes.services.pipeline import drain
    from tests.actors import make_actor
    from tests.factories import md5

    flooder, other = make_actor("flooder"), make_actor("other")
    # Warm up first (the match index's compiled code, the first queries): only the flood is timed.
    flooder.submit(flooder.statement([{"type": "vpdq", "frames": [
        {"i": i, "t": float(i), "pdq": frame("warm", i), "q": 90} for i in range(10)]}], content_type="video"))
    drain()
    shared = frame("shared")
    for n in range(videos):
        signal = {"type": "vpdq", "frames": [{"i": 0, "t": 0.0, "pdq": shared, "q": 90}] + [
            {"i": i, "t": float(i), "pdq": frame(n, i), "q": 90} for i in range(1, frames)]}
        flooder.submit(flooder.statement([signal], content_type="video"))
    other.submit(other.statement([md5(1)]))
    verification.statements_verify(ids=list(Statement.objects.filter(state="received").values_list("id", flat=True)))
    # Publishing holds the feed lock: every member's statements wait for the whole batch.
    start = time.monotonic()
    publishing.publish_verified(batch_size=500)
    held = time.monotonic() - start
    assert Statement.objects.get(member=other.member).state == "published"
    assert Statement.objects.filter(state="published").count() == videos + 2
    return {"publish_seconds": held}


def run(checkout: Path, videos: int, frames: int) -> dict[str, float]:
    return run_child(__file__, checkout, [str(videos), str(frames)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--frames", type=int, default=3800)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    now = run(ROOT, args.videos, args.frames)
    print(f"{args.videos} videos x {args.frames} frames sharing one frame, then one MD5 of another member")
    print(f"now:    publishing (under the feed lock) took {now['publish_seconds']:.2f} s")
    if args.before:
        before = run(args.before.resolve(), args.videos, args.frames)
        print(f"before: publishing (under the feed lock) took {before['publish_seconds']:.2f} s")
        print(f"ratio (before / now): {before['publish_seconds'] / now['publish_seconds']:.1f}x")


if __name__ == "__main__":
    main()
