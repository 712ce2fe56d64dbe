"""What the same text costs on the wire in each lossless coding (issue 17), on 500 validation questions.

    python bench/wire_bytes.py          # -> bench/results/wire_bytes.json; tokenizers only, about a minute

Per coding (latentwire/wire/codings.py: utf8, zstd-19, shared-vocabulary ids, unigram range coding under the
shipped table, bigram: order-1 on top of it), the mean bytes of question + newline + context and of the
context alone, every round trip checked exact; the shared-token count and the bits a token of the unigram and
bigram codings. And the version 2 packet (latentwire/wire/token_packet.py) of the context, or of the context
with the question, under either coder (and of the context framed as a token reader's sender packs it, "Context: ...",
the framing left out of the packet: flag bit 1): its mean bytes, header + CRC included, and its median and p90 decode
time (the first packet included, which builds the bigram coder's models), every packet decoded back to its
exact texts.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    from latentwire.config import load_config
    from latentwire.data.loaders import load_examples
    from latentwire.eval.report import plain_table
    from latentwire.llm.loader import load_receiver
    from latentwire.prompt import split_content
    from latentwire.provenance import code_commit
    from latentwire.wire.bigram import BigramTable
    from latentwire.wire.codings import text_codings
    from latentwire.wire.shared_vocab import SharedVocabulary
    from latentwire.wire.token_packet import TokenWire
    from latentwire.wire.unigram import UnigramTable

    config = load_config(None, ["data.n=500"])
    tokenizers = [load_receiver(r.model, r.name, "float32").tokenizer for r in config.receivers]
    vocabulary = SharedVocabulary.from_tokenizers(tokenizers[0], tokenizers[1:])
    codings = text_codings(vocabulary, UnigramTable.load(), BigramTable.load())
    wires = {"unigram": TokenWire(vocabulary, UnigramTable.load()),
             "bigram": TokenWire(vocabulary, UnigramTable.load(), BigramTable.load())}
    examples, _ = load_examples("squad", "", "validation", config.data.n, config.data.seed,
                                config.data.max_context_chars)
    framed = [split_content(e.question, e.context, "context")[0] for e in examples]   # "Context: ..."
    rows = []
    for part, texts, pairs in (("question+context", [f"{e.question}\n{e.context}" for e in examples],
                                [(e.context, e.question) for e in examples]),
                               ("context", [e.context for e in examples], [(e.context, None) for e in examples]),
                               ("framed context (a token reader's packet)", framed, [(t, None) for t in framed])):
        row = {"text": part, "n": len(texts), "shared_tokens": statistics.mean(len(vocabulary.encode(t)) for t in texts)}
        for name, coding in codings.items():
            sizes = []
            for text in texts:
                data = coding.encode(text)
                assert coding.decode(data) == text, (name, text[:40])
                sizes.append(len(data))
            row[f"bytes_{name}"] = statistics.mean(sizes)
        for name in ("unigram", "bigram"):
            row[f"{name}_bits_per_token"] = 8 * (row[f"bytes_{name}"] - 2) / row["shared_tokens"]
        for name, wire in wires.items():
            packets = [wire.encode(*pair) for pair in pairs]
            seconds = []
            for packet, pair in zip(packets, pairs):
                start = time.perf_counter()
                assert wire.decode(packet) == pair
                seconds.append(time.perf_counter() - start)
            row[f"bytes_packet_v2_{name}"] = statistics.mean(map(len, packets))
            row[f"packet_v2_{name}_decode_ms"] = 1000 * statistics.median(seconds)
            row[f"packet_v2_{name}_decode_ms_p90"] = 1000 * sorted(seconds)[int(0.9 * len(seconds))]
            if part.startswith("framed"):    # the same packets with the framing's ids sent
                row[f"bytes_packet_v2_{name}_framing_sent"] = statistics.mean(
                    len(wire.encode(*pair, frame=False)) for pair in pairs)
        rows.append(row)
    result = {"commit": code_commit(), "shared_vocabulary": len(vocabulary), "rows": rows}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "wire_bytes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(plain_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
