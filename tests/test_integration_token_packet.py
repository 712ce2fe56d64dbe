"""Version 2 packets on the default receivers' shared vocabulary and the shipped unigram table: the 500
validation contexts (with and without their questions) decode back exactly (select with -m integration)."""
import pytest

from latentwire.config import load_config
from latentwire.data.loaders import load_examples
from latentwire.llm.loader import load_receiver
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.token_packet import TokenWire, parse_header
from latentwire.wire.unigram import UnigramTable

pytestmark = pytest.mark.integration


def test_500_validation_packets_decode_to_their_exact_contexts():
    config = load_config(None, [])
    tokenizers = [load_receiver(r.model, r.name, "float32").tokenizer for r in config.receivers]
    wire = TokenWire(SharedVocabulary.from_tokenizers(tokenizers[0], tokenizers[1:]), UnigramTable.load())
    examples, _ = load_examples("squad", split="validation", n=500, seed=0)
    assert len(examples) == 500
    utf8, packed = 0, 0
    for example in examples:
        context_only = wire.encode(example.context)
        assert wire.decode(context_only) == (example.context, None)
        both = wire.encode(example.context, example.question)
        assert wire.decode(both) == (example.context, example.question)
        counts, payload = parse_header(both, wire.id)
        assert len(both) - len(payload) <= 16
        utf8 += len(f"{example.question}\n{example.context}".encode())
        packed += len(both)
    assert packed < utf8 / 3          # the whole prompt in under a third of its UTF-8 bytes
