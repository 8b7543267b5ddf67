"""How word-like samples are: the fraction of their whitespace-separated words that occur in the training corpus.

A word is a maximal run of non-whitespace characters (str.split()), punctuation included, compared exactly (case and
attached punctuation count): "lord," is a corpus word of Tiny Shakespeare, "lemg." is not. A cheap, reference-free
check that a small model writes words rather than letter soup (the quickstart prints it); it says
nothing about grammar or sense.
"""

from __future__ import annotations

from collections.abc import Iterable


def corpus_words(documents: Iterable[str]) -> frozenset[str]:
    """The set of whitespace-separated words of the documents."""
    return frozenset(word for document in documents for word in document.split())


def corpus_word_fraction(samples: Iterable[str], words: frozenset[str] | set[str]) -> tuple[float, int]:
    """(fraction of the samples' whitespace-separated words that are in `words`, number of sample words);
    the fraction is 0.0 when the samples hold no word."""
    sample_words = [word for sample in samples for word in sample.split()]
    if not sample_words:
        return 0.0, 0
    return sum(word in words for word in sample_words) / len(sample_words), len(sample_words)


def training_corpus_words(config) -> frozenset[str]:
    """The words of a run's training documents (RunConfig.data; the held-out validation documents excluded)."""
    from dlm.data.splits import split_documents

    return corpus_words(split_documents(config.data)[0])
