"""What one member's statements make everyone else read: sizes of a feed page, a hash detail, a match
answer and a webhook body, against an older checkout.

    .venv/bin/python bench/amplification.py [--before /tmp/media-before] [--statements 20] [--padding 370000]

One member submits --statements statements asserting the same MD5, each with a `note` of 2,000
characters and an unknown payload field of --padding bytes (an older checkout publishes them; this
one refuses them with payload_field_unknown, so then the same statements are sent without it).
Another member then reads: the feed (one page), the hash's detail, `match/` with the MD5 asked 7
times (about 600 bytes), and the webhook body its subscription would get. Runs in a child process
per checkout, on a fresh SQLite database under a temporary CONSORTIUM_VAR_DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkouts import run_child  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def child(statements: int, padding: int) -> dict[str, int]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from consortium_client.statements import hash_statement
    from distribution import rendering
    from hashes.models import Event, Hash
    from hashes.services.pipeline import drain
    from hashes.visibility import Viewer
    from tests.actors import make_actor
    from tests.factories import md5

    loud, reader = make_actor("loud"), make_actor("reader")

    def signed(n: int, padded: bool) -> str:
        payload = hash_statement(iss="loud", signals=[md5(1)], content_type="photo", note="n" * 2000, jti=f"s{n}")
        return loud.signer.sign({**payload, "padding": "p" * padding} if padded else payload)

    answer = loud.api.post("/api/v1/statements/", {"statements": [signed(n, True) for n in range(statements)]},
                           format="json").json()
    refused = len(answer.get("rejected", []))
    if refused:
        loud.submit(*[signed(n, False) for n in range(statements)])
    drain()
    hash_id = Hash.objects.get().pk
    feed = reader.api.get("/api/v1/feed/?after=0&limit=100").content
    detail = reader.api.get(f"/api/v1/hashes/{hash_id}/").content
    match = reader.api.post("/api/v1/match/", {"signals": [md5(1)] * 7}, format="json")
    viewer = Viewer.for_member(reader.member)
    head = Event.objects.order_by("-seq").values_list("seq", flat=True).first()
    batch = rendering.range_batch(viewer, rendering.Filters(), after=0, through=head)
    webhook = rendering.events_body(lane="main", events=batch.events)
    return {"padded statements refused": refused, "feed page bytes": len(feed), "largest event bytes": max(
        len(json.dumps(e)) for e in json.loads(feed)["events"]), "hash detail bytes": len(detail),
        "match request bytes": len(json.dumps({"signals": [md5(1)] * 7})), "match answer bytes": len(match.content),
        "webhook body bytes": len(webhook)}


def run(checkout: Path, statements: int, padding: int) -> dict[str, int]:
    return run_child(__file__, checkout, [str(statements), str(padding)], {"REQUEST_MAX_BYTES": str(64 * 1024 * 1024)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    parser.add_argument("--statements", type=int, default=20)
    parser.add_argument("--padding", type=int, default=370_000)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    now = run(ROOT, args.statements, args.padding)
    before = run(args.before.resolve(), args.statements, args.padding) if args.before else None
    print(f"{args.statements} statements of one member on one MD5, each with {args.padding:,} bytes of padding")
    for figure, value in now.items():
        line = f"{figure:28} now {value:>12,}"
        if before is not None:
            old = before[figure]
            line += f"   before {old:>12,}" + (f"   ({old / value:.1f}x)" if value and "bytes" in figure else "")
        print(line)


if __name__ == "__main__":
    main()
