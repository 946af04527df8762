"""The suppression list from the command line. Each subcommand prints only its result:

    python manage.py benign import FILE [--format csv|json]   all or nothing; prints what changed
    python manage.py benign list [--inactive | --all] [--format csv|json]
    python manage.py benign deactivate TYPE:VALUE [TYPE:VALUE ...]
    python manage.py benign cover    disputes what an interrupted add or import left uncovered

Changes are audited with the actor `operator`.
"""

from __future__ import annotations

import csv
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from consortium.api.errors import CodedError
from suppression.entries import EntryError, entry_row
from suppression.files import FORMATS, FileRejected, guess_format
from suppression.models import BenignEntry
from suppression.selectors import entry_list
from suppression.services import benign_entries_cover, benign_entries_set_active, benign_import

LIST_COLUMNS = ("type", "value", "reason", "active", "added_by", "added_at")


class Command(BaseCommand):
    help = "Keep the suppression list of known-benign entries: import a file, list, deactivate."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imports = sub.add_parser("import", help="Import entries from a CSV or JSON file, all or nothing.")
        imports.add_argument("file")
        imports.add_argument("--format", choices=FORMATS, help="Default: from the file's name or its content.")
        listing = sub.add_parser("list", help="Print the entries (active ones unless told otherwise).")
        which = listing.add_mutually_exclusive_group()
        which.add_argument("--inactive", action="store_true")
        which.add_argument("--all", action="store_true")
        listing.add_argument("--format", choices=FORMATS, default="csv")
        deactivate = sub.add_parser("deactivate", help="Deactivate entries given as TYPE:VALUE; all or none.")
        deactivate.add_argument("entries", nargs="+", metavar="TYPE:VALUE")
        sub.add_parser("cover", help="Dispute the live hashes of active entries not yet covered.")

    def handle(self, *args, action: str, **options):
        try:
            if action == "import":
                self.import_file(options["file"], options["format"])
            elif action == "list":
                active = None if options["all"] else not options["inactive"]
                self.list_entries(entry_list(active=active), options["format"])
            elif action == "deactivate":
                self.deactivate(options["entries"])
            else:
                self.stdout.write(f"{benign_entries_cover()} disputes opened")
        except CodedError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None

    def import_file(self, name: str, fmt: str | None) -> None:
        try:
            with open(name, "rb") as handle:
                data = handle.read(settings.BENIGN_IMPORT_MAX_BYTES + 1)
        except OSError as exc:
            raise CommandError(f"file_unreadable: {name}: {exc.strerror}.") from None
        try:
            result = benign_import(data=data, fmt=fmt or guess_format(name, data), name=name)
        except FileRejected as exc:
            raise CommandError("\n".join(exc.lines())) from None
        self.stdout.write(result.summary())

    def list_entries(self, entries, fmt: str) -> None:
        rows = [
            {"type": e.signal_type, "value": e.value, "reason": e.reason, "active": e.active,
             "added_by": e.added_by_label, "added_at": e.added_at.isoformat()}
            for e in entries.iterator(chunk_size=2000)
        ]
        if fmt == "json":
            self.stdout.write(json.dumps(rows, indent=1))
            return
        writer = csv.DictWriter(self.stdout, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    def deactivate(self, given: list[str]) -> None:
        keys = []
        for item in given:
            signal_type, _, value = item.partition(":")
            try:
                keys.append(entry_row(signal_type, value, "-").key)
            except EntryError as exc:
                raise CommandError(f"{exc.code}: {item}: {exc.message}") from None
        found = {(e.signal_type, e.value): e.pk for e in BenignEntry.objects.filter(
            signal_type__in={t for t, _ in keys}, value__in={v for _, v in keys})}
        unknown = [f"{t}:{v}" for t, v in keys if (t, v) not in found]
        if unknown:
            raise CommandError(f"entry_unknown: not on the list, nothing changed: {', '.join(unknown)}")
        changed = benign_entries_set_active(entry_ids=[found[k] for k in keys], active=False)
        self.stdout.write(f"{changed} deactivated")
