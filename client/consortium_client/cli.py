"""`consortium`, the member command line: keys, local hashing, signing and submitting, the feed,
matching, feedback and retraction, and verifying statements and webhook deliveries.

Configuration comes from flags or the environment: --server / CONSORTIUM_URL, --token /
CONSORTIUM_TOKEN, --key / CONSORTIUM_KEY_FILE (the private JWK that signs). Every command prints
JSON with --json (errors too, on stderr), and exits with a status that says what kind of failure
it was (see EXIT_CODES).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import keys as jwk_keys
from .errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_REJECTED,
    EXIT_USAGE,
    EXIT_VERIFICATION,
    CommandError,
    media_unavailable,
)
from .http import ApiError, ConsortiumClient, NetworkError
from .statements import StatementSigner, feedback_statement, retract_statement, target_of
from .verification import DEFAULT_SERVER_ISSUER, KeyRing, StatementVerificationError, verify_event

FEEDBACK_REASONS = ("not_tvec", "wrong_label", "newsworthy", "counter_speech", "benign_common_image",
                    "low_quality", "other")
FINAL_STATES = ("published", "rejected")
_HEX = re.compile(r"[0-9a-fA-F]+")
_TYPED_VALUE = re.compile(r"(pdq|md5|sha256|vpdq|hash):(.+)", re.IGNORECASE)
JOB_POLL_SECONDS = 1.0


class Parser(argparse.ArgumentParser):
    """argparse exits with status 2 on bad usage, which here means "the server refused"."""

    def error(self, message: str) -> NoReturn:
        raise CommandError("usage", f"{message} (see {self.prog} --help)")


# Output ------------------------------------------------------------------------------------------

class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, human: str | Callable[[], str]) -> None:
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False))
        else:
            text = human() if callable(human) else human
            if text:
                print(text)

    def line(self, data: Any) -> None:
        """One record of a stream (JSON Lines), in both modes."""
        print(json.dumps(data, ensure_ascii=False), flush=True)

    def note(self, text: str) -> None:
        """A hint for a person; never part of the --json output."""
        if not self.as_json:
            print(text, file=sys.stderr)

    def error(self, error: CommandError) -> None:
        if self.as_json:
            print(json.dumps(error.as_json(), ensure_ascii=False), file=sys.stderr)
        else:
            status = f" (HTTP {error.status})" if error.status else ""
            print(f"consortium: {error.code}{status}: {error.message}", file=sys.stderr)


# Configuration -----------------------------------------------------------------------------------

def server_url(args: argparse.Namespace) -> str:
    url = args.server or os.environ.get("CONSORTIUM_URL")
    if not url:
        raise CommandError("server_missing", "Say which server: --server URL or CONSORTIUM_URL.")
    if not url.startswith(("https://", "http://")):
        raise CommandError("server_invalid", f"--server must be an http(s) URL, not {url!r}.")
    return url.rstrip("/")


def api(args: argparse.Namespace, *, token: bool = True) -> ConsortiumClient:
    value = args.token or os.environ.get("CONSORTIUM_TOKEN")
    if token and not value:
        raise CommandError("token_missing", "Give an API token: --token TOKEN or CONSORTIUM_TOKEN.")
    return ConsortiumClient(server_url(args), value if token else None, timeout=args.timeout)


def signer(args: argparse.Namespace) -> StatementSigner:
    path = args.key or os.environ.get("CONSORTIUM_KEY_FILE")
    if not path:
        raise CommandError("key_missing", "Give the private signing key: --key FILE or CONSORTIUM_KEY_FILE "
                           "(make one with `consortium keygen`).")
    jwk = _private_jwk(Path(path))
    return StatementSigner(jwk_keys.load_private_jwk(jwk), jwk.get("kid") or jwk_keys.thumbprint(jwk))


def _private_jwk(path: Path) -> dict[str, Any]:
    try:
        mode = path.stat().st_mode
        jwk = json.loads(path.read_text())
    except OSError as exc:
        raise CommandError("key_unreadable", f"{path}: {exc.strerror}.") from None
    except ValueError:
        raise CommandError("key_invalid", f"{path} is not a JSON private key (JWK).") from None
    if not isinstance(jwk, dict) or "d" not in jwk:
        raise CommandError("key_invalid", f"{path} holds no private key (a JWK with d).")
    try:
        jwk_keys.load_private_jwk(jwk)
    except jwk_keys.JWKError as exc:
        raise CommandError(exc.code, f"{path}: {exc.message}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"consortium: warning: {path} can be read by others (chmod 600 it).", file=sys.stderr)
    return jwk


# keygen and keys ---------------------------------------------------------------------------------

def cmd_keygen(args: argparse.Namespace, out: Output) -> int:
    key = jwk_keys.generate_private_key()
    private = jwk_keys.private_jwk(key, args.kid)
    _write_private(Path(args.out), json.dumps(private) + "\n", force=args.force)
    public = {k: v for k, v in private.items() if k != "d"}
    out.line(public)
    out.note(f"Private key written to {args.out} (readable by you only). Register the public key with "
             f"`consortium keys register --key {args.out}`; an administrator approves it before it signs.")
    return 0


def _write_private(path: Path, text: str, *, force: bool) -> None:
    """Owner-only from the first byte: created 0600 (never chmod-ed after), never through a symlink."""
    if path.exists() and not force:
        raise CommandError("key_exists", f"{path} exists; pass --force to replace it.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the path appeared meanwhile: never overwrite by accident
            os.unlink(tmp)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise CommandError("key_exists", f"{path} exists; pass --force to replace it.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_keys_register(args: argparse.Namespace, out: Output) -> int:
    path = args.key or os.environ.get("CONSORTIUM_KEY_FILE")
    if not path:
        raise CommandError("key_missing", "Give the key to register: --key FILE or CONSORTIUM_KEY_FILE.")
    private = _private_jwk(Path(path))
    public = {k: private[k] for k in ("kty", "crv", "x", "kid") if k in private}
    answer = api(args).register_key(public)
    out.result(answer, f"Registered key {answer.get('kid')}: {answer.get('state')}"
               + (" (an administrator must approve it before it signs)" if answer.get("state") == "pending" else ""))
    return 0


def cmd_keys_list(args: argparse.Namespace, out: Output) -> int:
    answer = api(args).keys()
    out.result(answer, lambda: "\n".join(f"{k.get('kid')}  {k.get('member')}  {k.get('state')}"
                                         for k in answer.get("keys", [])) or "No keys.")
    return 0


# hash --------------------------------------------------------------------------------------------

def is_file(text: str) -> bool:
    """Whether an argument names a file (a JWS or a hash is usually not even a possible file name)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def media_module() -> Any:
    try:
        from . import media
    except ImportError as exc:
        raise media_unavailable(exc) from None
    return media


def hash_file(path: str, seconds_per_hash: float = 0.0) -> list[dict[str, Any]]:
    """The signals `POST hash/` gives for this file, computed here by the same code."""
    media = media_module()
    if not is_file(path):
        raise CommandError("input_not_found", f"{path}: no such file.")
    try:
        return media.hash_media(Path(path), seconds_per_hash=seconds_per_hash)
    except media.MediaError as exc:
        raise CommandError(exc.code, f"{path}: {exc.message}", details=exc.details) from None


def hash_on_server(args: argparse.Namespace, path: str) -> list[dict[str, Any]]:
    """The signals of a file hashed by the server as a job (POST hash/jobs/), waited for."""
    if not is_file(path):
        raise CommandError("input_not_found", f"{path}: no such file.")
    client = api(args)
    job = client.hash_job_start(Path(path))
    while job["state"] in ("queued", "running"):
        time.sleep(JOB_POLL_SECONDS)
        job = client.hash_job(job["id"])
    if job["state"] != "done":
        raise CommandError(job["error"]["code"], f"{path}: {job['error']['message']}")
    return client.hash_job_signals(job)


def cmd_hash(args: argparse.Namespace, out: Output) -> int:
    failed = 0
    for path in args.files:
        try:
            signals = hash_on_server(args, path) if args.job else hash_file(path, args.seconds_per_hash)
        except CommandError as exc:
            if exc.code == "media_unavailable":
                raise
            out.error(exc)
            failed += 1
            continue
        out.line({"signals": signals} if len(args.files) == 1 else {"file": path, "signals": signals})
    return EXIT_USAGE if failed else 0


# submit ------------------------------------------------------------------------------------------

def cmd_submit(args: argparse.Namespace, out: Output) -> int:
    from .progress import Progress
    from .submit import MAX_BATCH, Options, Submitter, SubmitState, collect, default_state_path, network_failure

    if not (args.paths or args.csv or args.jsonl):
        raise CommandError("usage", "Nothing to submit: give files or directories, --csv FILE or --jsonl FILE.")
    if not 1 <= args.batch_size <= MAX_BATCH:
        raise CommandError("usage", f"--batch-size is 1 to {MAX_BATCH}.")
    options = Options(labels=tuple(args.label), incident=args.incident, share=args.share, note=args.note,
                      content_type=args.content_type, salt=args.salt, non_media=args.non_media)
    entries = collect(args.paths, args.csv, args.jsonl, options)
    sign = signer(args)
    client = api(args)
    member = client.me()["slug"]
    if not args.no_key_check:
        _check_key_active(client, member, sign.kid)
    state_path = Path(args.state) if args.state else default_state_path(client.base_url, member)
    state = SubmitState(state_path, server=client.base_url, member=member)
    submitter = Submitter(client=client, signer=sign, iss=member, state=state, options=options,
                          batch_size=args.batch_size)
    # By default the bar is drawn on a terminal only, and never under --json.
    progress = Progress(len(entries), label="submit",
                        enabled=args.progress if args.progress is not None else (False if out.as_json else None))
    try:
        report = submitter.run(entries, progress)
    except NetworkError as exc:
        raise network_failure(exc, submitter.report, state_path) from None
    finally:
        state.close()
    if args.wait:
        _wait_for_results(client, [r for r in report.results if r.get("id")], args.wait_timeout)
    summary = report.as_json(state_path, member)
    out.result(summary, lambda: _submit_text(summary))
    code = report.exit_code
    if args.wait and any(r.get("verification", {}).get("state") == "rejected" for r in report.results):
        code = EXIT_REJECTED
    return code


def _check_key_active(client: ConsortiumClient, member: str, kid: str) -> None:
    """Statements signed with a key that is not active are rejected later, after the jti is spent:
    say so before anything is signed (skipped when the token may not read keys)."""
    try:
        published = client.keys().get("keys", [])
    except ApiError as exc:
        if exc.code == "insufficient_scope":
            return
        raise
    if not any(k.get("kid") == kid and k.get("member") == member and k.get("state") == "active" for k in published):
        raise CommandError("key_not_active", f"Key {kid} is not an active key of {member} (pending approval, "
                           "retired, revoked or never registered): statements signed with it would be rejected. "
                           "Pass --no-key-check to submit anyway.")


def _submit_text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['inputs']} inputs: {summary['accepted']} accepted, {summary['already_accepted']} accepted "
             f"earlier, {summary['rejected']} rejected, {summary['input_errors']} not readable"
             + (f", {summary['duplicate_inputs']} duplicates" if summary["duplicate_inputs"] else "")
             + (f", {summary['skipped']} skipped" if summary["skipped"] else "")
             + f" (state: {summary['state_file']})"]
    for result in summary["results"]:
        if "error" in result:
            lines.append(f"  {result['state']}: {result['source']}: {result['error']['code']}: {result['error']['message']}")
        verification = result.get("verification")
        if verification and verification.get("state") == "rejected":
            lines.append(f"  rejected at verification: {result['source']}: {verification.get('rejection_code')}")
    for error in summary["errors"]:
        lines.append(f"  not submitted: {error['source']}: {error['error']['code']}: {error['error']['message']}")
    return "\n".join(lines)


def _wait_for_results(client: ConsortiumClient, results: list[dict[str, Any]], timeout: float) -> None:
    """Poll each statement until it is published or rejected (or the time is up); record what it became."""
    deadline = time.monotonic() + timeout
    waiting = list(results)
    while waiting:
        still = []
        for result in waiting:
            answer = client.statement(result["id"])
            result["verification"] = {"state": answer["state"], "rejection_code": answer.get("rejection_code")}
            if answer["state"] not in FINAL_STATES:
                still.append(result)
        waiting = still
        if waiting:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.5)


# feed --------------------------------------------------------------------------------------------

def cmd_feed(args: argparse.Namespace, out: Output) -> int:
    from .feed import FeedReader, network_error, open_sink, stop_on_signals

    client = api(args)
    sink = open_sink(args.out, args.sqlite, args.cursor, args.after)
    reader = FeedReader(client=client, sink=sink, server_issuer=args.server_issuer, limit=args.limit,
                        skip_invalid=args.skip_invalid, follow=args.follow, interval=args.interval)
    stop_on_signals(reader)
    try:
        reader.run()
    except NetworkError as exc:
        raise network_error(exc) from None
    finally:
        sink.close()
    summary = {"written": reader.written, "after": sink.after, "invalid": reader.invalid}
    if args.out == "-":
        print(json.dumps(summary) if out.as_json else f"{reader.written} events; cursor after {sink.after}",
              file=sys.stderr)
    else:
        out.result(summary, f"{reader.written} events written; cursor after {sink.after}")
    if reader.invalid:
        first = reader.invalid[0]
        raise CommandError(first["error"]["code"], f"event {first['seq']} did not verify: {first['error']['message']}"
                           + ("" if args.skip_invalid else "; stopped before it"),
                           exit_code=EXIT_VERIFICATION, details=summary)
    return 0


# match -------------------------------------------------------------------------------------------

def parse_target(text: str, client: ConsortiumClient | None = None) -> tuple[str, list[dict[str, Any]]]:
    """A FILE or a hash: `pdq:HEX`, `md5:HEX`, `sha256:HEX`, `vpdq:DIGEST`, `hash:ID`, or 32 bare hex
    digits (MD5). Returns a description and the signals it stands for."""
    if is_file(text):
        return text, hash_file(text)
    typed = _TYPED_VALUE.fullmatch(text)
    if typed:
        kind, value = typed.group(1).lower(), typed.group(2)
        if kind == "hash":
            if not value.isdigit() or client is None:
                raise CommandError("target_invalid", f"{text}: hash:ID takes a hash's numeric id.")
            detail = client.hash(int(value))
            return text, [{"type": detail["signal_type"], "value": detail["value"], **(
                {"frames": detail["frames"]} if detail["signal_type"] == "vpdq" else {})}]
        return text, [{"type": kind, "value": value}]
    if len(text) == 32 and _HEX.fullmatch(text):
        return text, [{"type": "md5", "value": text}]
    if len(text) == 64 and _HEX.fullmatch(text):
        raise CommandError("target_ambiguous", f"{text}: 64 hex digits could be PDQ or SHA-256: write pdq:{text[:8]}... "
                           "or sha256:....")
    raise CommandError("target_invalid", f"{text}: not a file, nor TYPE:VALUE (pdq, md5, sha256, vpdq, hash), nor an MD5.")


def cmd_match(args: argparse.Namespace, out: Output) -> int:
    client = api(args)
    queries: list[dict[str, Any]] = []
    sources: list[str] = []
    for target in args.targets:
        source, signals = parse_target(target, client)
        for signal in signals:
            if signal["type"] == "vpdq" and "frames" not in signal:
                raise CommandError("target_invalid", f"{target}: match a video by its file (its frames), not its digest.")
            query = dict(signal)
            if signal["type"] == "pdq" and args.max_distance is not None:
                query["max_distance"] = args.max_distance
            if signal["type"] == "vpdq" and args.min_match_percent is not None:
                query["min_match_percent"] = args.min_match_percent
            queries.append(query)
            sources.append(source)
    answer = client.match(queries, exclude_disputed=args.exclude_disputed)
    out.result(answer, lambda: _match_text(answer, sources))
    return 0


def _match_text(answer: dict[str, Any], sources: list[str]) -> str:
    lines = []
    for source, result in zip(sources, answer.get("results", [])):
        query = result.get("query", {})
        matches = result.get("matches", [])
        lines.append(f"{source} ({query.get('type')}): {len(matches)} match{'es' if len(matches) != 1 else ''}"
                     + (" (truncated)" if result.get("truncated") else ""))
        for match in matches:
            hash_ = match["hash"]
            how = (f"distance {match['distance']}" if "distance" in match else
                   f"{match.get('query_match_percent', 0):.0f}%/{match.get('stored_match_percent', 0):.0f}% of frames")
            dispute = hash_.get("dispute") or {}
            lines.append(f"  hash {hash_['id']} {hash_['signal_type']} {how}; labels {','.join(hash_.get('labels', [])) or '-'};"
                         f" {hash_.get('corroboration_count')} member(s)"
                         + (f"; dispute {dispute.get('state')}" if dispute else ""))
    return "\n".join(lines)


# feedback and retract ----------------------------------------------------------------------------

def cmd_feedback(args: argparse.Namespace, out: Output) -> int:
    if args.verdict == "disagree" and not args.reason:
        raise CommandError("reasons_required", f"disagree needs at least one --reason ({', '.join(FEEDBACK_REASONS)}).")
    if args.verdict != "disagree" and args.reason:
        raise CommandError("usage", "--reason goes with disagree only.")
    client = api(args)
    sign = signer(args)
    _, signals = parse_target(args.target, client)
    perceptual = [s for s in signals if s["type"] in ("pdq", "vpdq")] or signals
    target = target_of(perceptual[0])
    member = client.me()["slug"]
    payload = feedback_statement(iss=member, target=target, verdict=args.verdict, reasons=args.reason,
                                 labels=args.label, note=args.note, share=args.share, jti=args.jti)
    return _submit_one(client, sign.sign(payload), out, wait=not args.no_wait, timeout=args.wait_timeout,
                       extra={"target": target})


def cmd_retract(args: argparse.Namespace, out: Output) -> int:
    client = api(args)
    sign = signer(args)
    member = client.me()["slug"]
    payload = retract_statement(iss=member, retracts=args.jti, reason=args.reason)
    return _submit_one(client, sign.sign(payload), out, wait=not args.no_wait, timeout=args.wait_timeout,
                       extra={"retracts": args.jti})


def _submit_one(client: ConsortiumClient, token: str, out: Output, *, wait: bool, timeout: float,
                extra: dict[str, Any]) -> int:
    answer = client.submit([token])
    if answer.get("rejected"):
        error = answer["rejected"][0]["error"]
        raise CommandError(error["code"], error["message"], exit_code=EXIT_REJECTED)
    accepted = answer["accepted"][0]
    result = {"id": accepted["id"], "jti": accepted["jti"], "state": accepted["state"], **extra}
    if wait:
        _wait_for_results(client, [result], timeout)
        verification = result.pop("verification")
        result["state"], result["rejection_code"] = verification["state"], verification["rejection_code"]
    if result["state"] == "rejected":
        raise CommandError(result["rejection_code"] or "rejected", f"statement {result['jti']} was rejected "
                           f"({result['rejection_code']}).", exit_code=EXIT_REJECTED, details=result)
    out.result(result, f"{result['jti']}: {result['state']} (submission {result['id']})")
    return 0


# verify ------------------------------------------------------------------------------------------

def keyring(args: argparse.Namespace) -> KeyRing:
    """Members' keys and the server's: from files when given, else fetched from the server."""
    member_keys = _json_file(args.keys, "keys") if args.keys else None
    server_keys = _json_file(args.server_keys, "server keys") if args.server_keys else None
    if member_keys is None:
        member_keys = api(args).keys()
    if server_keys is None and not args.keys:
        server_keys = api(args, token=False).server_keys()
    try:
        return KeyRing(member_keys, server_keys, server_issuer=args.server_issuer)
    except jwk_keys.JWKError as exc:
        raise CommandError(exc.code, exc.message) from None


def _json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise CommandError("input_unreadable", f"{path}: {exc.strerror}.") from None
    except ValueError:
        raise CommandError("input_invalid", f"{path}: the {what} are not JSON.") from None


def _statement_inputs(items: Sequence[str]) -> list[tuple[str, str]]:
    """(where, text) of each statement or event: JWS strings given as arguments, or files (- for
    stdin) holding one JWS or one JSON event a line."""
    found = []
    for item in items or ["-"]:
        if item == "-" or is_file(item):
            text = sys.stdin.read() if item == "-" else Path(item).read_text()
            found += [(f"{item}:{n}", line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        else:
            found.append((item[:24] + "..." if len(item) > 27 else item, item))
    return found


def cmd_verify(args: argparse.Namespace, out: Output) -> int:
    ring = keyring(args)
    results = []
    for where, text in _statement_inputs(args.statements):
        try:
            if text.startswith("{"):
                event = json.loads(text)
                verified = verify_event(event, ring)
                results.append({"input": where, "valid": True, "seq": event.get("seq"), "statements": len(verified)})
            else:
                results.append({"input": where, **ring.verify(text).summary()})
        except StatementVerificationError as exc:
            results.append({"input": where, "valid": False, "error": {"code": exc.code, "message": exc.message}})
        except ValueError:
            results.append({"input": where, "valid": False, "error": {"code": "event_malformed",
                                                                       "message": "not a JSON event."}})
    invalid = sum(1 for r in results if not r["valid"])
    out.result({"results": results, "valid": len(results) - invalid, "invalid": invalid},
               lambda: "\n".join(_verify_text(r) for r in results))
    return EXIT_VERIFICATION if invalid else 0


def _verify_text(result: dict[str, Any]) -> str:
    if not result["valid"]:
        return f"INVALID {result['input']}: {result['error']['code']}: {result['error']['message']}"
    if "seq" in result:
        return f"valid   {result['input']}: event {result['seq']}, {result['statements']} statement(s)"
    return (f"valid   {result['input']}: {result['kind']} by {result['iss']} (jti {result['jti']}, "
            f"{result['signer']} key {result['kid']}, {result['key_state']})")


# verify-webhook ----------------------------------------------------------------------------------

def webhook_headers(args: argparse.Namespace) -> dict[str, str]:
    headers: dict[str, str] = {}
    if args.headers:
        text = Path(args.headers).read_text()
        try:
            loaded = json.loads(text)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            headers.update({str(k): str(v) for k, v in loaded.items()})
        else:
            for line in text.splitlines():  # a header block as `curl -D` or a proxy log writes it
                name, colon, value = line.partition(":")
                if colon and not line.startswith(("HTTP/", " ", "\t")):
                    headers[name.strip()] = value.strip()
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon:
            raise CommandError("usage", f"--header takes 'Name: value', not {header!r}.")
        headers[name.strip()] = value.strip()
    return headers


def cmd_verify_webhook(args: argparse.Namespace, out: Output) -> int:
    from . import webhooks

    headers = webhook_headers(args)
    try:
        body = sys.stdin.buffer.read() if args.body == "-" else Path(args.body).read_bytes()
    except OSError as exc:
        raise CommandError("input_unreadable", f"{args.body}: {exc.strerror}.") from None
    secrets = list(args.secret) or ([os.environ["CONSORTIUM_WEBHOOK_SECRET"]]
                                    if os.environ.get("CONSORTIUM_WEBHOOK_SECRET") else [])
    if args.require_v1a:
        secrets = []
    # v1a is checked with the server's keys from --jwks, or fetched from the server when one is set.
    public_keys: list[Any] = []
    if args.jwks:
        public_keys = webhooks.load_jwks(Path(args.jwks).read_bytes())
    elif args.require_v1a or not secrets or args.server or os.environ.get("CONSORTIUM_URL"):
        public_keys = webhooks.load_jwks(api(args, token=False).server_keys())
    checks: dict[str, bool | None] = {"v1": None, "v1a": None}
    failure: webhooks.WebhookVerificationError | None = None
    message_id = None
    for version, kwargs in (("v1", {"secrets": secrets}), ("v1a", {"public_keys": public_keys, "require_v1a": True})):
        if not any(kwargs.get(k) for k in ("secrets", "public_keys")):
            continue
        try:
            message_id = webhooks.verify(headers, body, tolerance=args.tolerance, **kwargs)
            checks[version] = True
        except ValueError as exc:
            if not isinstance(exc, webhooks.WebhookVerificationError):
                raise CommandError("secret_invalid", str(exc)) from None
            checks[version] = False
            failure = failure if failure and failure.code != "no_matching_signature" else exc
    if not any(checks.values()):
        assert failure is not None
        raise CommandError(failure.code, failure.message, exit_code=EXIT_VERIFICATION, details={"signatures": checks})
    result = {"valid": True, "webhook_id": message_id, "timestamp": headers_lower(headers).get("webhook-timestamp"),
              "signatures": checks}
    out.result(result, "valid: webhook-id {}; {}".format(
        message_id, ", ".join(f"{v} {'ok' if ok else 'failed'}" for v, ok in checks.items() if ok is not None)))
    return 0


def headers_lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


# The parser --------------------------------------------------------------------------------------

def build_parser() -> Parser:
    common = Parser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--server", help="the server's base URL (or CONSORTIUM_URL)")
    common.add_argument("--token", help="an API token (or CONSORTIUM_TOKEN; the flag is visible to other local users)")
    common.add_argument("--key", help="your private signing key, a JWK file (or CONSORTIUM_KEY_FILE)")
    common.add_argument("--json", action="store_true", help="print results, and errors on stderr, as JSON")
    common.add_argument("--timeout", type=float, help="seconds to wait for each HTTP answer (default 30)")
    common.add_argument("--server-issuer", help="the iss of statements the server signs itself "
                        f"(or CONSORTIUM_SERVER_ISSUER; default {DEFAULT_SERVER_ISSUER})")
    epilog = "exit status:\n" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES.items())
    parser = Parser(prog="consortium", parents=[common], epilog=epilog,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="The consortium member command line.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)

    def command(name: str, handler: Callable[..., int], help_text: str, parent: Any = commands) -> Parser:
        sub = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    keygen = command("keygen", cmd_keygen, "make an Ed25519 signing key: the private JWK to a file (mode 600), "
                     "the public JWK printed")
    keygen.add_argument("--out", required=True, help="where to write the private key")
    keygen.add_argument("--kid", help="the key id (default: the key's RFC 7638 thumbprint)")
    keygen.add_argument("--force", action="store_true", help="replace the file if it exists")

    keys = commands.add_parser("keys", help="register or list signing keys", parents=[common]).add_subparsers(
        dest="keys_command", metavar="ACTION", required=True, parser_class=Parser)
    command("register", cmd_keys_register, "register your key's public part (pending until approved)", keys)
    command("list", cmd_keys_list, "every member's published keys (GET keys/)", keys)

    hash_ = command("hash", cmd_hash, "hash images and videos here, exactly as POST hash/ does, and print its JSON "
                    "(one line per file; with several files each line also names its file)")
    hash_.add_argument("files", nargs="+", metavar="FILE")
    hash_.add_argument("--seconds-per-hash", type=float, default=0.0,
                       help="hash a video frame every this many seconds (default 0: every frame, as the server)")
    hash_.add_argument("--job", action="store_true",
                       help="have the server hash the files instead (POST hash/jobs/, for long videos), and wait")

    submit = command("submit", cmd_submit, "sign and submit hash statements from media files, directories, or "
                     "CSV/JSONL files of hashes; resumable, never submits anything twice")
    submit.add_argument("paths", nargs="*", metavar="PATH", help="image or video files, or directories of them")
    submit.add_argument("--csv", action="append", default=[], metavar="FILE",
                        help="rows of type,value[,quality,content_type,labels,note] (- for stdin)")
    submit.add_argument("--jsonl", action="append", default=[], metavar="FILE",
                        help='lines of {"signals": [...], "content_type"?, "labels"?, "note"?}, as `consortium '
                        'hash` prints them (- for stdin)')
    submit.add_argument("--label", action="append", default=[], help="a taxonomy label (repeat for more)")
    submit.add_argument("--incident", help="the slug of a declared incident")
    submit.add_argument("--share", default="consortium", help="consortium (default) or a sharing group's slug")
    submit.add_argument("--note", help="free text carried by every statement")
    submit.add_argument("--content-type", choices=("photo", "video", "file"),
                        help="default: video for vPDQ, photo for PDQ, file otherwise")
    submit.add_argument("--non-media", choices=("error", "skip", "exact"), default="error",
                        help="a file that is no image or video: report it (default), skip it, or submit its MD5 and "
                        "SHA-256 as content type file")
    submit.add_argument("--batch-size", type=int, default=1000, help="statements per request, 1 to 1000 (default 1000)")
    submit.add_argument("--state", help="the state file (default: under $XDG_STATE_HOME/consortium, one per "
                        "member and server)")
    submit.add_argument("--salt", default="", help="vary the statement ids, to submit the same inputs again as new "
                        "statements (for example after retracting them)")
    submit.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="draw a progress bar on stderr (default: when stderr is a terminal)")
    submit.add_argument("--no-key-check", action="store_true", help="do not check first that the key is active")
    submit.add_argument("--wait", action="store_true", help="then wait for each statement to be published or "
                        "rejected, and report rejections")
    submit.add_argument("--wait-timeout", type=float, default=120.0, help="seconds --wait waits (default 120)")

    feed = command("feed", cmd_feed, "follow the feed into JSON Lines or SQLite, verifying every statement; "
                   "resumes from its cursor")
    feed.add_argument("--out", help="a JSON Lines file (- for stdout); its cursor is FILE.cursor")
    feed.add_argument("--sqlite", help="a SQLite file (tables events, hashes, cursor)")
    feed.add_argument("--cursor", help="the cursor file of --out (default: FILE.cursor)")
    feed.add_argument("--after", type=int, help="start after this seq when there is no cursor yet (default 0)")
    feed.add_argument("--limit", type=int, default=1000, help="events per request (default 1000)")
    feed.add_argument("--follow", action="store_true", help="keep polling for new events until stopped (SIGINT/SIGTERM)")
    feed.add_argument("--interval", type=float, default=5.0, help="seconds between polls with --follow (default 5)")
    feed.add_argument("--skip-invalid", action="store_true",
                      help="leave out events that do not verify and go on (default: stop before the first)")

    match = command("match", cmd_match, "match files (hashed here) or hashes against every hash you can see")
    match.add_argument("targets", nargs="+", metavar="FILE|HASH",
                       help="a file, TYPE:VALUE (pdq, md5, sha256), or an MD5")
    match.add_argument("--exclude-disputed", action="store_true", help="leave out hashes with an open dispute")
    match.add_argument("--max-distance", type=int, help="PDQ radius (default: the server's, 31)")
    match.add_argument("--min-match-percent", type=float, help="vPDQ threshold (default: the server's, 80)")

    feedback = command("feedback", cmd_feedback, "sign and submit a verdict on a hash")
    feedback.add_argument("verdict", choices=("agree", "disagree", "seen"))
    feedback.add_argument("target", metavar="TARGET", help="hash:ID, TYPE:VALUE (vpdq by its value digest), an MD5, "
                          "or a file (its PDQ or vPDQ)")
    feedback.add_argument("--reason", action="append", default=[], choices=FEEDBACK_REASONS,
                          help="why you disagree (repeat for more)")
    feedback.add_argument("--label", action="append", default=[], help="a label you suggest")
    feedback.add_argument("--note", help="free text")
    feedback.add_argument("--share", default="consortium", help="consortium (default) or a sharing group's slug")
    feedback.add_argument("--jti", help="the statement id (default: a new UUID)")

    retract = command("retract", cmd_retract, "sign and submit the retraction of one of your statements")
    retract.add_argument("jti", help="the jti of the statement to retract")
    retract.add_argument("--reason", required=True)

    for sub in (feedback, retract):
        sub.add_argument("--no-wait", action="store_true", help="do not wait for it to be published or rejected")
        sub.add_argument("--wait-timeout", type=float, default=60.0, help="seconds to wait (default 60)")

    verify = command("verify", cmd_verify, "verify statements (JWS) or feed events (JSON) against published keys")
    verify.add_argument("statements", nargs="*", metavar="STATEMENT|FILE",
                        help="a JWS, or a file (- for stdin) of one JWS or JSON event a line; default stdin")
    verify.add_argument("--keys", help="members' keys from a file (as GET keys/ answers) instead of the server")
    verify.add_argument("--server-keys", help="the server's keys from a file (as /.well-known/jwks.json)")

    webhook = command("verify-webhook", cmd_verify_webhook,
                      "verify a webhook delivery: v1 (HMAC, your whsec_ secret) and v1a (Ed25519, the server's keys)")
    webhook.add_argument("--body", required=True, help="the raw body, as received (- for stdin)")
    webhook.add_argument("--header", "-H", action="append", default=[], help="'Name: value' (repeat)")
    webhook.add_argument("--headers", help="a file of headers: 'Name: value' lines, or a JSON object")
    webhook.add_argument("--secret", action="append", default=[],
                         help="a whsec_ secret (repeat during a rotation; or CONSORTIUM_WEBHOOK_SECRET)")
    webhook.add_argument("--jwks", help="the server's keys from a file instead of /.well-known/jwks.json")
    webhook.add_argument("--require-v1a", action="store_true", help="accept only the server's Ed25519 signature")
    webhook.add_argument("--tolerance", type=float, default=300.0,
                         help="seconds webhook-timestamp may be off (default 300)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Output(as_json="--json" in argv)
    try:
        args = build_parser().parse_args(argv)
        for name, default in (("server", None), ("token", None), ("key", None), ("json", False), ("timeout", 30.0),
                              ("server_issuer", None)):
            if not hasattr(args, name):
                setattr(args, name, default)
        args.server_issuer = args.server_issuer or os.environ.get("CONSORTIUM_SERVER_ISSUER") or DEFAULT_SERVER_ISSUER
        out = Output(as_json=args.json)
        return args.handler(args, out)
    except CommandError as exc:
        out.error(exc)
        return exc.exit_code
    except ApiError as exc:
        out.error(CommandError(exc.code or "http_error", exc.message, exit_code=EXIT_REJECTED, details=exc.details,
                               status=exc.status))
        return EXIT_REJECTED
    except NetworkError as exc:
        out.error(CommandError("network_error", str(exc), exit_code=EXIT_NETWORK))
        return EXIT_NETWORK
    except jwk_keys.JWKError as exc:
        out.error(CommandError(exc.code, exc.message))
        return EXIT_USAGE
    except KeyboardInterrupt:
        out.error(CommandError("interrupted", "interrupted", exit_code=EXIT_INTERRUPTED))
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a local file that cannot be read or written (network errors are caught above)
        out.error(CommandError("io_error", f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")))
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
