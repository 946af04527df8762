"""The mutation catalogue (tests/mutations) stays usable: each mutant's original text is found
exactly once in this checkout, so a change that rewrites mutated code says so here, in the suite,
not only when someone next runs tests/mutations/run.py."""

from __future__ import annotations

import sys
from pathlib import Path

MUTATIONS = Path(__file__).resolve().parent / "mutations"


def test_every_mutant_still_finds_its_original_text_once():
    sys.path.insert(0, str(MUTATIONS))
    try:
        from mutants import MUTANTS
        from run import check_catalogue
    finally:
        sys.path.remove(str(MUTATIONS))
    assert check_catalogue(list(MUTANTS)) == []
