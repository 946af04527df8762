"""Mutation check: apply each one-line mutant of tests/mutations/mutants.py to a copy of this
checkout, run the tests that should catch it, and report which were killed and which survived.

    python tests/mutations/run.py                 # every mutant (the database and broker come
                                                  # from the environment, as for the test suite)
    python tests/mutations/run.py --list          # names, files, equivalents
    python tests/mutations/run.py --only visibility.q-drops-author 'families.*'

Not part of the test suite: pytest never collects it (no test_ prefix). Mutants that need
PostgreSQL are reported as not run when DATABASE_URL is not a PostgreSQL URL; equivalent mutants
(no behaviour change, each with its reason) are listed, not run, and not counted. A test run that
passes --timeout counts as killed (the suite would hang); a mutant that breaks the import or the
collection is an error, not a kill. Exit status 0 when every mutant that ran was killed."""

from __future__ import annotations

import argparse
import fnmatch
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
COPY_IGNORES = shutil.ignore_patterns(".git", ".venv", "var", "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    verdict: str  # killed, survived, timeout, error
    seconds: float
    detail: str = ""


def check_catalogue(mutants: list[Mutant]) -> list[str]:
    """Every problem with the catalogue against this checkout; an empty list when it is usable."""
    problems = []
    names = [m.name for m in mutants]
    problems += [f"{name}: the name is used twice" for name in sorted({n for n in names if names.count(n) > 1})]
    for m in mutants:
        path = ROOT / m.path
        if not path.is_file():
            problems.append(f"{m.name}: {m.path} does not exist")
            continue
        found = path.read_text().count(m.original)
        if found != 1:
            problems.append(f"{m.name}: its original text is found {found} times in {m.path}, not once")
        if m.original == m.mutated:
            problems.append(f"{m.name}: the mutated text is the original")
        for test in m.tests:
            if not (ROOT / test.split("::")[0]).is_file():
                problems.append(f"{m.name}: no test file {test.split('::')[0]}")
    return problems


def on_postgresql() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


class Workspace:
    """A copy of the checkout in which one mutant at a time is applied, tested and undone."""

    def __init__(self, base: Path, number: int, timeout: float) -> None:
        self.tree = base / f"tree{number}"
        shutil.copytree(ROOT, self.tree, ignore=COPY_IGNORES)
        self.timeout = timeout
        self.env = dict(os.environ)
        self.env.setdefault("DJANGO_SECRET_KEY", "mutation-check")
        # The copy's modules, its client package included, win over any installed copy; no bytecode
        # is written, so a restored file can never be served from a mutant's cache entry.
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.tree / "client"), str(self.tree),
                                                  self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env["CONSORTIUM_VAR_DIR"] = str(self.tree / "var")
        self.env.setdefault("CONSORTIUM_SIGNING_KEY_CREATE", "true")  # a throwaway server key, in production mode too
        if on_postgresql():  # each workspace its own test database
            url = urlsplit(self.env["DATABASE_URL"])
            self.env["DATABASE_URL"] = urlunsplit(url._replace(path=f"{url.path}_mut{number}"))

    def pytest(self, tests: tuple[str, ...]) -> tuple[int | None, str, float]:
        """Run these tests here: (exit status or None on timeout, output, seconds)."""
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e",
                   "--no-header", "-o", "addopts=--strict-markers", *tests]
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=self.tree, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the test run and whatever it started
            output, _ = process.communicate()
            return None, output, time.monotonic() - started
        return process.returncode, output, time.monotonic() - started

    def run(self, mutant: Mutant) -> Outcome:
        path = self.tree / mutant.path
        original = path.read_text()
        path.write_text(original.replace(mutant.original, mutant.mutated, 1))
        try:
            status, output, seconds = self.pytest(mutant.tests)
        finally:
            path.write_text(original)
        if status is None:
            return Outcome(mutant, "timeout", seconds, f"no answer within {self.timeout:.0f} s")
        if status == 0:
            return Outcome(mutant, "survived", seconds)
        failed = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - |$)", output, re.MULTILINE)
        if status == 1 and failed:
            return Outcome(mutant, "killed", seconds, failed.group(1))
        # No test failed: the mutant broke the import or the collection, which says nothing about the tests.
        last = output.strip().splitlines()[-1] if output.strip() else ""
        return Outcome(mutant, "error", seconds, f"pytest exit status {status}: {last}")


def select(names: list[str] | None) -> list[Mutant]:
    if not names:
        return list(MUTANTS)
    chosen = [m for m in MUTANTS if any(fnmatch.fnmatchcase(m.name, pattern) for pattern in names)]
    unknown = [n for n in names if not any(fnmatch.fnmatchcase(m.name, n) for m in MUTANTS)]
    if unknown:
        sys.exit(f"No mutant is named {', '.join(unknown)} (see --list).")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these mutants only (shell-style patterns allowed)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=300, metavar="S", help="seconds per test run (default 300)")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the selected tests unmutated first")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="copies tested side by side (default 1)")
    args = parser.parse_args()

    problems = check_catalogue(list(MUTANTS))
    if problems:
        print("The mutant catalogue does not fit this checkout:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    chosen = select(args.only)
    if args.list:
        for m in chosen:
            note = f"  [equivalent: {m.equivalent}]" if m.equivalent else ("  [PostgreSQL]" if m.postgresql else "")
            print(f"{m.name:48} {m.path}{note}")
        print(f"{len(chosen)} mutants, {sum(1 for m in chosen if m.equivalent)} equivalent")
        return 0

    equivalent = [m for m in chosen if m.equivalent]
    skipped = [m for m in chosen if not m.equivalent and m.postgresql and not on_postgresql()]
    to_run = [m for m in chosen if not m.equivalent and m not in skipped]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="consortium-mutants-") as base:
        workspaces = [Workspace(Path(base), n, args.timeout) for n in range(max(1, min(args.jobs, len(to_run) or 1)))]
        if not args.no_baseline and to_run:
            tests = tuple(dict.fromkeys(t for m in to_run for t in m.tests))
            status, output, seconds = workspaces[0].pytest(tests)
            if status != 0:
                print(output[-5000:])
                print(f"The selected tests do not pass unmutated (status {status}); fix that first.", file=sys.stderr)
                return 2
            print(f"baseline: {len(tests)} test paths pass unmutated ({seconds:.0f} s)")
        outcomes = run_all(to_run, workspaces)
    report(outcomes, equivalent, skipped, time.monotonic() - started)
    return 0 if all(o.verdict in ("killed", "timeout") for o in outcomes) else 1


def run_all(mutants: list[Mutant], workspaces: list[Workspace]) -> list[Outcome]:
    work: queue.Queue[Mutant] = queue.Queue()
    for m in mutants:
        work.put(m)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def worker(workspace: Workspace) -> None:
        while True:
            try:
                m = work.get_nowait()
            except queue.Empty:
                return
            outcome = workspace.run(m)
            with lock:
                outcomes.append(outcome)
                print(f"[{len(outcomes):3}/{len(mutants)}] {outcome.verdict:8} {m.name:48} {outcome.seconds:5.1f} s"
                      f"  {outcome.detail}", flush=True)

    threads = [threading.Thread(target=worker, args=(w,)) for w in workspaces]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    order = {m.name: n for n, m in enumerate(mutants)}
    return sorted(outcomes, key=lambda o: order[o.mutant.name])


def report(outcomes: list[Outcome], equivalent: list[Mutant], skipped: list[Mutant], seconds: float) -> None:
    killed = [o for o in outcomes if o.verdict in ("killed", "timeout")]
    survivors = [o for o in outcomes if o.verdict not in ("killed", "timeout")]
    print()
    for o in survivors:
        print(f"{o.verdict.upper()}: {o.mutant.name} ({o.mutant.path}) {o.detail}\n"
              f"  - {o.mutant.original.strip()}\n  + {o.mutant.mutated.strip()}")
    for m in equivalent:
        print(f"equivalent: {m.name}: {m.equivalent}")
    for m in skipped:
        print(f"not run: {m.name} needs PostgreSQL (set DATABASE_URL)")
    score = 100 * len(killed) / len(outcomes) if outcomes else 100.0
    print(f"\nkilled {len(killed)}/{len(outcomes)} ({score:.1f} %), {len(equivalent)} equivalent, "
          f"{len(skipped)} not run, in {seconds / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
