"""Wire codings of text: the shared vocabulary, ids, unigram and lm coding, each exact, bad bytes refused."""
import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentwire.errors import CodingError
from latentwire.wire.bigram import BigramTable, fit_bigram
from latentwire.wire.codings import pack_ids, text_codings, unpack_ids
from latentwire.wire.lm_coding import LMCoder
from latentwire.wire.shared_vocab import SharedVocabulary, from_byte_string, to_byte_string
from latentwire.wire.unigram import UnigramTable, fit_unigram

TEXTS = ["Context: Paris is the capital of France.", "Who wrote it in 1999?", "naïve café — 東京 😀",
         "  spaces\tand\nnewlines  ", "<|im_end|> is not special here", ""]


@pytest.fixture(scope="module")
def vocabulary(pair):
    return SharedVocabulary.from_tokenizers(pair["a"].tokenizer, [pair["b"].tokenizer])


@pytest.fixture(scope="module")
def codings(vocabulary):
    return text_codings(vocabulary, fit_unigram(vocabulary, TEXTS * 3, progress=False),
                        fit_bigram(vocabulary, TEXTS * 3, progress=False))


def test_byte_strings_round_trip():
    for text in TEXTS:
        assert from_byte_string(to_byte_string(text)) == text
    with pytest.raises(CodingError, match="UTF-8"):
        from_byte_string(to_byte_string("é")[:1])


def test_shared_vocabulary_leaves_out_special_tokens_and_spells_any_text(vocabulary, pair):
    assert "<|im_end|>" not in vocabulary.ids and len(vocabulary) > 256
    for text in TEXTS:
        ids = vocabulary.encode(text)
        assert vocabulary.decode(ids) == text and all(0 <= i < len(vocabulary) for i in ids)
    # shared tokens are the sender's own where it has them: no more tokens than its tokenizer gives
    text = TEXTS[0]
    assert len(vocabulary.encode(text)) == len(pair["a"].tokenizer(text, add_special_tokens=False)["input_ids"])
    with pytest.raises(CodingError, match="out of range"):
        vocabulary.decode([len(vocabulary)])


def test_a_vocabulary_without_the_byte_tokens_is_refused(pair):
    with pytest.raises(CodingError, match="byte-level"):
        SharedVocabulary(["a", "b"], pair["a"].tokenizer)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60))
def test_every_coding_round_trips_any_text(codings, text):
    for coding in codings.values():
        assert coding.decode(coding.encode(text)) == text


def test_codings_sizes_order_on_text(codings):
    text = TEXTS[0] * 3
    size = {name: len(c.encode(text)) for name, c in codings.items()}
    assert size["bigram"] < size["unigram"] < size["ids"] < size["utf8"] and size["zstd"] < size["utf8"]


@pytest.mark.parametrize("name,data", [("utf8", b"\xff"), ("zstd", b"not zstd"), ("ids", b"\x05"),
                                       ("ids", b"\x05\x00\x01"), ("unigram", b"\x03\x00\x01\x02\x03"),
                                       ("unigram", b""), ("bigram", b"\x03\x00\x01\x02\x03"), ("bigram", b"")])
def test_malformed_bytes_get_one_line_errors(codings, name, data):
    with pytest.raises(CodingError, match=name):
        codings[name].decode(data)


def test_pack_ids_uses_ceil_log2_bits():
    ids = [0, 5, 1023, 17]
    data = pack_ids(ids, 1024)
    assert len(data) == 2 + 5 and unpack_ids(data, 1024) == ids   # 4 x 10 bits = 5 bytes
    with pytest.raises(CodingError, match="out of range"):
        unpack_ids(pack_ids([1000], 1024), 1000)


def test_unigram_table_saves_loads_and_refuses_bad_files(vocabulary, tmp_path):
    table = fit_unigram(vocabulary, TEXTS, {"split": "test"}, progress=False)
    table.save(tmp_path / "u.json.gz")
    loaded = UnigramTable.load(tmp_path / "u.json.gz")
    assert loaded.counts == table.counts and loaded.fingerprint == vocabulary.fingerprint
    assert table.provenance["texts"] == len(TEXTS) and 0 < table.bits_per_token() < 20
    (tmp_path / "bad.json.gz").write_bytes(b"garbage")
    with pytest.raises(CodingError, match="bad.json.gz"):
        UnigramTable.load(tmp_path / "bad.json.gz")
    (tmp_path / "neg.json.gz").write_bytes(gzip.compress(json.dumps({"fingerprint": "x", "counts": [-1]}).encode()))
    with pytest.raises(CodingError, match="non-negative"):
        UnigramTable.load(tmp_path / "neg.json.gz")
    other = UnigramTable("another", table.counts)
    with pytest.raises(CodingError, match="fingerprints"):
        text_codings(vocabulary, other)


def test_bigram_table_saves_loads_refuses_bad_files_and_names_its_contents(vocabulary, tmp_path):
    table = fit_bigram(vocabulary, TEXTS * 2, min_count=2, progress=False)
    assert all(min(counts) >= 2 for _, counts in table.successors.values())
    table.save(tmp_path / "b.json.gz")
    loaded = BigramTable.load(tmp_path / "b.json.gz")
    assert loaded.successors == table.successors and loaded.digest() == table.digest()
    assert fit_bigram(vocabulary, TEXTS, min_count=1, progress=False).digest() != table.digest()
    (tmp_path / "bad.json.gz").write_bytes(gzip.compress(b'{"fingerprint": "x", "successors": {"1": [[2], []]}}'))
    with pytest.raises(CodingError, match="as many positive counts"):
        BigramTable.load(tmp_path / "bad.json.gz")
    with pytest.raises(CodingError, match="fingerprints"):
        text_codings(vocabulary, fit_unigram(vocabulary, TEXTS, progress=False), BigramTable("other", {}))


def test_shipped_bigram_table_is_the_unigram_tables_vocabulary():
    assert BigramTable.load().fingerprint == UnigramTable.load().fingerprint


def test_shipped_table_matches_the_default_receivers_vocabulary_size():
    table = UnigramTable.load()
    assert len(table.counts) > 30000 and table.provenance["split"] == "train"
    assert 9 < table.bits_per_token() < 12


def test_lm_coding_is_exact_and_refuses_other_bytes(pair):
    coder = LMCoder(pair["a"])
    for text in TEXTS[:3]:
        data = coder.encode(text)
        assert coder.decode(data) == text and len(data) >= 2
    with pytest.raises(CodingError, match="lm"):
        coder.decode(b"\x01")
    with pytest.raises(CodingError, match="lm"):
        coder.decode(b"\xff\xff" + b"\x00" * 4)


def test_lm_prefix_messages_equal_their_own_codings_and_decode_together(pair):
    coder = LMCoder(pair["a"])
    parts = ["Paris is the capital of France.", "\nWhat is the capital?"]
    (short, t0), (long, t1) = coder.encode_prefixes(parts)
    assert short == coder.encode(parts[0]) and coder.decode(long) == "".join(parts)
    (a, s0), (b, s1) = coder.decode_together([short, long])
    assert (a, b) == (parts[0], "".join(parts)) and 0 <= s0 <= s1 and 0 <= t0 <= t1
    with pytest.raises(CodingError, match="share"):
        coder.decode_together([coder.encode("Rome is old."), long])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.binary(min_size=4, max_size=40))
def test_range_codings_refuse_or_decode_any_payload_in_one_line(codings, count, body):
    for name in ("unigram", "bigram"):
        data = count.to_bytes(2, "little") + body
        try:
            assert isinstance(codings[name].decode(data), str)
        except CodingError as error:
            assert "\n" not in str(error) and name in str(error)
    with pytest.raises(CodingError, match="tokens claimed"):
        codings["bigram"].decode((60000).to_bytes(2, "little") + b"\0" * 4)
