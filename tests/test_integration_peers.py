"""The peers on the real offline models (select with -m integration): MiniLM selection, LLMLingua with
SmolLM2 scoring, and the wire codings of the default receivers with the shipped unigram table."""
import pytest

from latentwire.config import PromptConfig
from latentwire.data.loaders import load_examples
from latentwire.eval.methods import METHODS, MethodContext
from latentwire.sentences import SCORERS, split_sentences
from latentwire.llm.loader import load_receiver
from latentwire.prompt import PromptBuilder
from latentwire.wire.codings import text_codings
from latentwire.wire.shared_vocab import SharedVocabulary
from latentwire.wire.unigram import UnigramTable

pytestmark = pytest.mark.integration
EXAMPLES, _ = load_examples("squad", n=3, seed=1)


@pytest.fixture(scope="module")
def smollm2():
    return load_receiver("smollm2-135m", "smollm2", "auto")


def test_minilm_ranks_the_sentence_that_answers_first():
    scorer = SCORERS["minilm"]()
    sentences = ["The weather was cold in January.", "Paris is the capital of France.", "Dogs bark at night."]
    scores = scorer("What is the capital of France?", sentences)
    assert max(range(3), key=scores.__getitem__) == 1 and all(-1 <= s <= 1 for s in scores)


def test_select_minilm_and_llmlingua_on_squad(smollm2):
    ctx = MethodContext(smollm2, PromptBuilder(smollm2.tokenizer, PromptConfig(), "smollm2"), sentences=1,
                        rate=0.33, sender=smollm2)
    for example in EXAMPLES:
        chosen = METHODS["select_minilm"].build(example, ctx)
        kept = chosen.message.coded.split("\n", 1)[1]
        assert kept in split_sentences(example.context) or len(split_sentences(example.context)) == 1
        pruned = METHODS["llmlingua"].build(example, ctx)
        assert 0 < len(pruned.message.coded) < len(f"{example.question}\n{example.context}")


def test_default_receivers_share_a_vocabulary_the_shipped_table_fits(smollm2):
    qwen = load_receiver("qwen2.5-coder-0.5b", "qwen", "auto")
    vocabulary = SharedVocabulary.from_tokenizers(smollm2.tokenizer, [qwen.tokenizer])
    codings = text_codings(vocabulary, UnigramTable.load())
    for example in EXAMPLES:
        text = f"{example.question}\n{example.context}"
        sizes = {name: len(c.encode(text)) for name, c in codings.items()}
        assert all(c.decode(c.encode(text)) == text for c in codings.values())
        assert sizes["unigram"] < sizes["ids"] < sizes["utf8"]
