"""Receiver-side focus marks (latentwire.adapters.focus): the tokens of the sentences the question picks."""
import pytest

from latentwire.adapters.focus import focus_marks, focus_scorer, sentence_byte_spans
from latentwire.wire.shared_vocab import SharedVocabulary

CONTEXT = "Paris is old. The Eiffel tower stands in Paris, built in 1889. Zürich lies on a lake."


@pytest.fixture()
def vocabulary(pair):
    return SharedVocabulary.from_tokenizers(pair["a"].tokenizer, [pair["b"].tokenizer])


def test_sentence_spans_are_byte_offsets():
    text = "Zürich is here. Then more."
    spans = sentence_byte_spans(text, ["Zürich is here.", "Then more."])
    assert [text.encode()[a:b].decode() for a, b in spans] == ["Zürich is here.", "Then more."]


def test_marks_cover_exactly_the_chosen_sentence(vocabulary):
    ids = vocabulary.encode(CONTEXT)
    marks = focus_marks("When was the Eiffel tower built?", ids, vocabulary)
    assert len(marks) == len(ids)
    marked = vocabulary.decode([i for i, m in zip(ids, marks) if m])
    assert "Eiffel tower stands in Paris, built in 1889." in marked
    assert "old" not in marked and "lake" not in marked


def test_two_sentences_and_short_contexts_and_none(vocabulary):
    ids = vocabulary.encode(CONTEXT)
    two = focus_marks("Which lake is in Zürich, near the Eiffel tower?", ids, vocabulary, sentences=2)
    marked = vocabulary.decode([i for i, m in zip(ids, two) if m])
    assert "Zürich" in marked and "Eiffel" in marked and "old" not in marked
    short = vocabulary.encode("One sentence only")
    assert focus_marks("What?", short, vocabulary) == [1] * len(short)
    assert focus_marks("What?", ids, vocabulary, sentences=0) == [0] * len(ids)


def test_an_unknown_scorer_is_refused():
    with pytest.raises(ValueError, match="focus scorer must be one of"):
        focus_scorer("bm25")
