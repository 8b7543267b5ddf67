import pytest

from dlm.eval.corpus_words import corpus_word_fraction, corpus_words

CORPUS = ["ROMEO:\nBut soft, what light\n\nthrough yonder window breaks?", "It is the east, and Juliet is the sun."]


def test_words_are_whitespace_runs_with_their_punctuation():
    words = corpus_words(CORPUS)
    assert {"ROMEO:", "soft,", "breaks?", "sun.", "It", "is"} <= words
    assert "soft" not in words and "romeo:" not in words and "" not in words
    assert len(words) == 16


@pytest.mark.parametrize("samples, fraction, count", [
    (["But soft, what light"], 1.0, 4),
    (["we rod sagtrt leytt, repieif? lemg."], 0.0, 6),
    (["It is the moon.", "  Juliet,\tis\n"], 4 / 6, 6),  # "moon." and "Juliet," (with a comma) are not
    (["", " \n "], 0.0, 0),
])
def test_fraction_of_sample_words_found_in_the_corpus(samples, fraction, count):
    assert corpus_word_fraction(samples, corpus_words(CORPUS)) == (pytest.approx(fraction), count)
