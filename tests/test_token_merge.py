"""The token-merge reader of lossless packets: k = 1 is the text's embeddings, k > 1 starts as the group mean at
the tokens' RMS, ragged batches are masked, and both merges learn."""
import pytest
import torch
from torch import nn

from latentwire.adapters.token_merge import MERGES, TokenMergeReader, focus_layout, group_tokens


@pytest.fixture()
def table():
    torch.manual_seed(0)
    return nn.Embedding(50, 16).requires_grad_(False)       # a receiver's table is frozen


def _batch():
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    return ids, mask


def test_group_tokens_pads_the_last_group():
    groups, members = group_tokens(torch.ones(2, 5, 3), torch.tensor([[1] * 5, [1, 1, 0, 0, 0]]), 2)
    assert groups.shape == (2, 3, 2, 3) and members.tolist() == [[[1, 1], [1, 1], [1, 0]], [[1, 1], [0, 0], [0, 0]]]


def test_k1_reads_the_embeddings_untouched(table):
    ids, mask = _batch()
    embeds, positions = TokenMergeReader(table)(ids, mask, 1)
    assert torch.equal(positions, mask) and torch.equal(embeds[0], table(ids[0]))
    assert not embeds[1, 2:].any()


@pytest.mark.parametrize("merge", sorted(MERGES))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_merges_start_as_the_mean_at_the_groups_rms(table, merge, k):
    ids, mask = _batch()
    embeds, positions = TokenMergeReader(table, merge)(ids, mask, k)
    assert embeds.shape == (2, -(-5 // k), 16) and positions[1].tolist() == [1] + [0] * (positions.shape[1] - 1)
    first = table(ids[0, :k])
    mean = first.mean(0)
    expected = mean * first.pow(2).mean().sqrt() / mean.pow(2).mean().sqrt()
    torch.testing.assert_close(embeds[0, 0], expected)
    torch.testing.assert_close(embeds[1, 0].pow(2).mean().sqrt(), table(ids[1, :2]).pow(2).mean().sqrt())
    assert not embeds[1, 1:].any()


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_both_merges_learn_and_the_table_is_not_theirs(table, merge):
    reader = TokenMergeReader(table, merge, ks=(1, 2))
    assert all(not name.startswith("embedding") for name, _ in reader.named_parameters())
    ids, mask = _batch()
    target = torch.randn(2, 3, 16)
    optimizer = torch.optim.Adam(reader.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        embeds, positions = reader(ids, mask, 2)
        loss = ((embeds - target) * positions[..., None]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0] and all(torch.isfinite(p).all() for p in reader.parameters())


def test_bad_settings_are_refused(table):
    with pytest.raises(ValueError, match="merge must be one of"):
        TokenMergeReader(table, "sum")
    with pytest.raises(ValueError, match=r"1\.\.4"):
        TokenMergeReader(table, ks=(5,))
    with pytest.raises(ValueError, match="not k=3"):
        TokenMergeReader(table, ks=(1, 2))(*_batch(), 3)


def test_shared_ids_reach_each_receiver_as_its_own_tokens_and_spell_the_text(pair):
    from latentwire.adapters.token_merge import SharedTokenReader
    from latentwire.wire.shared_vocab import SharedVocabulary

    vocabulary = SharedVocabulary.from_tokenizers(pair["a"].tokenizer, [pair["b"].tokenizer])
    text = "Paris is the capital of France. Ünïcödé 😀"
    shared = torch.tensor([vocabulary.encode(text)])
    mask = torch.ones_like(shared)
    for name in ("a", "b"):
        receiver = pair[name]
        mapping = vocabulary.receiver_ids(receiver.tokenizer)
        reader = SharedTokenReader(mapping, receiver.model.get_input_embeddings(), ks=(1, 3))
        own = [mapping[i] for i in shared[0].tolist()]
        assert receiver.tokenizer.decode(own) == text
        embeds, positions = reader(shared, mask, 1)
        torch.testing.assert_close(embeds[0], receiver.model.get_input_embeddings()(torch.tensor(own)).float())
        assert reader(shared, mask, 3)[0].shape[1] == -(-len(own) // 3)


def test_focus_layout_keeps_context_order_and_reads_focus_tokens_alone():
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0]])
    focus = torch.tensor([[0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]])
    index, single = focus_layout(mask, focus, 2)
    assert index[0].tolist() == [[0, 1], [2, -1], [3, -1], [4, -1], [5, 6]]
    assert single[0].tolist() == [False, False, True, True, False]
    assert index[1].tolist() == [[0, 1], [2, -1], [-1, -1], [-1, -1], [-1, -1]] and not single[1].any()


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_focus_tokens_are_their_embeddings_and_no_focus_is_the_uniform_reading(table, merge):
    ids, mask = _batch()
    reader = TokenMergeReader(table, merge, ks=(1, 4))
    focus = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    embeds, positions = reader(ids, mask, 4, focus)
    assert positions.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]
    assert torch.equal(embeds[0, 1], table(ids[0, 1])) and torch.equal(embeds[0, 2], table(ids[0, 2]))
    uniform, _ = reader(ids, mask, 4)
    none, none_positions = reader(ids, mask, 4, torch.zeros_like(mask))
    assert none.shape == uniform.shape and none_positions.tolist() == [[1, 1], [1, 0]]
    torch.testing.assert_close(none, uniform)


def test_the_relative_mlp_merge_is_in_the_embeddings_own_units_and_the_plain_one_is_not():
    torch.manual_seed(0)
    groups, members = torch.randn(2, 3, 4, 16), torch.ones(2, 3, 4)
    small = {}
    for merge in ("mlp", "mlp_relative"):
        module = MERGES[merge](4, 16, 8)
        torch.nn.init.normal_(module.net[-1].weight)                  # as if trained: the MLP adds something
        small[merge] = (module(groups * 0.1, members), module(groups, members) * 0.1)
    torch.testing.assert_close(*small["mlp_relative"], rtol=1e-2, atol=1e-4)    # scales with the embeddings
    assert not torch.allclose(*small["mlp"], rtol=0.1)                # in absolute units: swamps small tokens


def test_a_balanced_layout_spreads_tokens_over_the_positions_it_is_given():
    from latentwire.adapters.token_merge import balanced_layout

    index = balanced_layout([7, 4, 0], [3, 2, 0])
    assert index.shape == (3, 3, 3)
    assert index[0].tolist() == [[0, 1, 2], [3, 4, -1], [5, 6, -1]]          # the larger groups first
    assert index[1].tolist() == [[0, 1, -1], [2, 3, -1], [-1, -1, -1]] and (index[2] == -1).all()
    sizes = (balanced_layout([43], [20])[0] >= 0).sum(1)
    assert sizes.sum() == 43 and set(sizes.tolist()) == {2, 3}
    for length, count in ((9, 2), (4, 5)):       # more than 4 tokens a position, or more positions than tokens
        with pytest.raises(ValueError, match="positions"):
            balanced_layout([length], [count])


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_a_layout_reads_each_group_with_the_merge_for_its_size(table, merge):
    from latentwire.adapters.token_merge import balanced_layout

    ids, mask = _batch()
    reader = TokenMergeReader(table, merge, ks=(2, 3))
    for p in reader.parameters():
        nn.init.normal_(p, std=0.1)         # merges that are not the mean: the right one must be used
    embeds, positions = reader(ids, mask, 2, layout=balanced_layout([5, 2], [2, 1]))
    assert positions.tolist() == [[1, 1], [1, 0]] and not embeds[1, 1].any()
    three, _ = reader(ids[:1, :3], mask[:1, :3], 3)
    two, _ = reader(torch.stack([ids[0, 3:], ids[1, :2]]), torch.ones(2, 2, dtype=torch.long), 2)
    torch.testing.assert_close(embeds[0, 0], three[0, 0])
    torch.testing.assert_close(embeds[0, 1], two[0, 0])
    torch.testing.assert_close(embeds[1, 0], two[1, 0])
    single, _ = reader(ids[:1], mask[:1], 2, layout=balanced_layout([5], [5]))
    torch.testing.assert_close(single[0], table(ids[0]))
    with pytest.raises(ValueError, match="groups of \\[2, 3\\] tokens, a layout asks for 4"):
        reader(ids[:1, :4], mask[:1, :4], 2, layout=balanced_layout([4], [1]))


@pytest.mark.parametrize("merge", sorted(MERGES))
def test_a_short_group_is_read_by_the_next_larger_merge_with_its_missing_members_masked(table, merge):
    from latentwire.adapters.token_merge import balanced_layout

    ids, mask = _batch()
    reader = TokenMergeReader(table, merge, ks=(2, 4), layer_pool=merge)
    for p in reader.parameters():
        nn.init.normal_(p, std=0.1)         # merges that are not the mean: the right one must be used
    three, _ = reader(ids[:1, :3], mask[:1, :3], 2, layout=balanced_layout([3], [1]))    # a group of 3: k = 4's
    at_four, _ = reader(ids[:1, :3], mask[:1, :3], 4)                                    # a context's last 3 at k = 4
    torch.testing.assert_close(three, at_four)
    states = torch.randn(1, 2, 4, table.embedding_dim)
    members = torch.tensor([[[1, 1, 1, 0], [1, 1, 0, 0]]])
    pooled = reader.pool_states(states, members)
    torch.testing.assert_close(pooled[0, 0], reader.layer_merges["4"](states[:, :1], members[:, :1])[0, 0])
    torch.testing.assert_close(pooled[0, 1], reader.layer_merges["2"](states[:, 1:, :2], members[:, 1:, :2])[0, 0])
    with pytest.raises(ValueError, match="pools groups of \\[2, 4\\] states, not 5"):
        reader.pool_states(torch.randn(1, 1, 5, table.embedding_dim), torch.ones(1, 1, 5, dtype=torch.long))


def test_the_config_checks_the_merges_the_reader_has():
    from latentwire.adapters.token_merge import LAYER_POOLS
    from latentwire.config import MERGE_NAMES
    assert tuple(MERGES) == MERGE_NAMES and LAYER_POOLS == ("mean", *MERGE_NAMES)
