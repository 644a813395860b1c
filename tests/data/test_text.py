"""The offline English corpus: deterministic, real prose only, disjoint splits."""

import pytest

from slimkit.data import text
from slimkit.errors import ConfigError

SMALL = ("json", "email", "argparse")


def test_corpus_is_deterministic_across_builds():
    first = text.corpus(SMALL)
    text.corpus.cache_clear()
    assert text.corpus(SMALL) == first and len(first) > 300


def test_splits_are_disjoint_and_cover_the_corpus():
    sp = text.text_splits(SMALL)
    assert set(sp.calibration).isdisjoint(sp.evaluation)
    assert {s.lower() for s in sp.calibration}.isdisjoint(s.lower() for s in sp.evaluation)
    assert sorted(sp.calibration + sp.evaluation) == sorted(text.corpus(SMALL))
    assert 0.1 < len(sp.evaluation) / len(text.corpus(SMALL)) < 0.3


def test_only_prose_survives():
    assert all(text.is_prose(s) for s in text.corpus(SMALL))
    assert text.is_prose("Return the exception raised by the call that the future represents.")
    for code in ("Call foo(bar) with the default value of the option here.",
                 "Set x = 3 and then call the parser again with the new value.",
                 "See https://example.org for the details of this sentence here.",
                 "Use os.path to join the parts of the file name together now.",
                 "the quick brown fox jumps over the lazy dog every day.",  # no capital
                 "Too short to count."):
        assert not text.is_prose(code), code
    doc = "Summary line of the docstring here.\n\n    indented = code(block)\n\n>>> 1 + 1\n2"
    assert text.sentences_of(doc) == []


def test_unknown_source_is_named():
    with pytest.raises(ConfigError, match="no such installed package"):
        text.corpus(("no_such_package_xyz",))


@pytest.mark.slow
def test_the_stdlib_corpus_is_large():
    sp = text.text_splits()
    assert len(sp.calibration) > 3000 and len(sp.evaluation) > 700
