"""The reader of lossless token packets (packet version 2): a context's tokens in one receiver's vocabulary,
read k to a position. T tokens become M = ceil(T / k) positions; each is a learned merge of the receiver's
own embeddings of its k tokens, scaled to their RMS, so that k = 1 is the text's embeddings exactly.

Merges (registry MERGES), all starting as the mean of the group:
    weighted   a learned per-dimension weight for each place in the group (the token-pairs reader's merge)
    mlp        the mean plus a small MLP over the k embeddings and their places in the group (zero at start)
    mlp_relative  the same, the MLP's output scaled by the group mean's RMS (it cannot swamp small embeddings)
A reader holds one merge per k it reads (`ks`), so one reader serves every k of a mixed-k training.

Two resolutions: with `focus` marks [B, T] (the tokens of the sentences the receiver selected for the
question, latentwire.adapters.focus), each marked token gets a position of its own (its plain embedding) and
the runs of unmarked tokens between them are read k to a position, all in context order.

A position budget: with a `layout` (balanced_layout) a row's T tokens take a given number of positions, in
consecutive groups whose sizes differ by at most one, each merged by the reader's merge for its size.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

MAX_K = 4


def group_tokens(embeds: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """embeds [B, T, d], mask [B, T] (1 = token) -> groups [B, M, k, d] and member mask [B, M, k], M = ceil(T/k);
    the tokens of each row are packed from the left, the missing members of a row's last group are padding."""
    batch, length, width = embeds.shape
    m = max(1, math.ceil(length / k))
    pad = m * k - length
    if pad:
        embeds = torch.cat([embeds, embeds.new_zeros(batch, pad, width)], dim=1)
        mask = torch.cat([mask, mask.new_zeros(batch, pad)], dim=1)
    return embeds.reshape(batch, m, k, width), mask.reshape(batch, m, k)


def masked_mean(groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """groups [B, M, k, d], members [B, M, k] -> the mean of each group's present members [B, M, d] (0 if none)."""
    weight = members.to(groups.dtype)[..., None]
    return (groups * weight).sum(2) / weight.sum(2).clamp(min=1)


def focus_layout(mask: torch.Tensor, focus: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """mask, focus [B, T] -> index [B, M, k] (the token each place of a position reads; -1 for none) and single
    [B, M] (the position is one focus token), in context order: a focus token alone, the unmarked tokens
    between focus tokens k to a position (a run's last position may be short). M is the longest row's."""
    rows = []
    for present, marked in zip(mask.tolist(), focus.tolist()):
        groups, run = [], []
        for t, (real, keep) in enumerate(zip(present, marked)):
            if not real:
                continue
            if keep:
                groups += [(run, False)] if run else []
                groups.append(([t], True))
                run = []
            else:
                run.append(t)
                if len(run) == k:
                    groups.append((run, False))
                    run = []
        rows.append(groups + ([(run, False)] if run else []))
    m = max(1, max(map(len, rows)))
    index = torch.full((len(rows), m, k), -1, dtype=torch.long)
    single = torch.zeros(len(rows), m, dtype=torch.bool)
    for b, groups in enumerate(rows):
        for j, (members, alone) in enumerate(groups):
            index[b, j, :len(members)] = torch.tensor(members)
            single[b, j] = alone
    return index.to(mask.device), single.to(mask.device)


def balanced_layout(lengths: list[int], positions: list[int]) -> torch.Tensor:
    """Each row's token count T_b and positions M_b (ceil(T_b / MAX_K) <= M_b <= T_b) -> index [B, M, g] (the
    tokens each position reads, -1 for none; M, g the largest): T_b tokens in M_b consecutive groups whose sizes
    differ by at most one, the larger ones first (where a packet's fixed "Context:" label lies)."""
    rows = []
    for length, count in zip(lengths, positions):
        if not length:
            rows.append([])
            continue
        if not math.ceil(length / MAX_K) <= count <= length:
            raise ValueError(f"{length} tokens take {math.ceil(length / MAX_K)} to {length} positions, not {count}")
        size, larger = divmod(length, count)
        bounds = [j * size + min(j, larger) for j in range(count + 1)]
        rows.append([list(range(a, b)) for a, b in zip(bounds, bounds[1:])])
    m, g = max(1, max(map(len, rows))), max(1, max((len(x) for row in rows for x in row), default=1))
    index = torch.full((len(rows), m, g), -1, dtype=torch.long)
    for b, groups in enumerate(rows):
        for j, members in enumerate(groups):
            index[b, j, :len(members)] = torch.tensor(members)
    return index


def gather_groups(embeds: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """embeds [B, T, d], index [B, M, k] (-1: none) -> groups [B, M, k, d] (0 where none), members [B, M, k]."""
    batch, length, width = embeds.shape
    padded = torch.cat([embeds, embeds.new_zeros(batch, 1, width)], dim=1)
    where = torch.where(index < 0, length, index)
    groups = torch.gather(padded, 1, where.reshape(batch, -1, 1).expand(-1, -1, width))
    return groups.reshape(*index.shape, width), (index >= 0).long()


class WeightedMerge(nn.Module):
    """A learned weight per place in the group and dimension [k, d], starting at 1/k (the mean)."""

    def __init__(self, k: int, width: int, hidden: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((k, width), 1.0 / k))

    def forward(self, groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """groups [B, M, k, d], members [B, M, k] -> [B, M, d] (missing members of a short group add nothing)."""
        return (self.weight * groups * members.to(groups.dtype)[..., None]).sum(2)


class MLPMerge(nn.Module):
    """The group's mean plus MLP(LayerNorm(its k embeddings, each plus its place's embedding)), the MLP's last
    layer zero at start."""

    def __init__(self, k: int, width: int, hidden: int = 128):
        super().__init__()
        self.place = nn.Parameter(torch.zeros(k, width))
        self.norm = nn.LayerNorm(k * width)
        self.net = nn.Sequential(nn.Linear(k * width, hidden), nn.GELU(), nn.Linear(hidden, width))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def learned(self, groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """groups [B, M, k, d], members [B, M, k] -> the MLP's part [B, M, d] (0 at start)."""
        placed = (groups + self.place) * members.to(groups.dtype)[..., None]       # missing members stay 0
        return self.net(self.norm(placed.flatten(2)))

    def forward(self, groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """groups [B, M, k, d], members [B, M, k] -> [B, M, d]."""
        return masked_mean(groups, members) + self.learned(groups, members)


class RelativeMLPMerge(MLPMerge):
    """MLPMerge with the MLP's output in units of the group mean's RMS: the learned part scales with the
    receiver's embeddings (a plain MLP's output, in absolute units, can swamp the mean of a receiver whose
    embeddings are small, e.g. Qwen's RMS 0.017, and map every group to one direction)."""

    def forward(self, groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """groups [B, M, k, d], members [B, M, k] -> [B, M, d]."""
        mean = masked_mean(groups, members)
        return mean + mean.pow(2).mean(-1, keepdim=True).sqrt() * self.learned(groups, members)


MERGES: dict[str, Callable[..., nn.Module]] = {"weighted": WeightedMerge, "mlp": MLPMerge,
                                              "mlp_relative": RelativeMLPMerge}

LAYER_POOLS = ("mean", *MERGES)
"""How a reader merging from a decoder layer on pools a group's states there: their mean, or a learned merge
(one of MERGES, starting as the mean) of the group's states."""


class TokenMergeReader(nn.Module):
    """One receiver's reader: token ids [B, T] in its vocabulary -> its input embeddings read k to a position
    [B, M, d_model] with a position mask [B, M]; k = 1 passes the embeddings through untouched."""

    def __init__(self, embedding: nn.Embedding, merge: str = "weighted", ks: tuple[int, ...] = (1, 2, 3, 4),
                 hidden: int = 128, layer_pool: str = "mean", pool_hidden: int = 128):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"reader merge must be one of {sorted(MERGES)}, got {merge!r}")
        if layer_pool not in LAYER_POOLS:
            raise ValueError(f"reader layer pool must be one of {LAYER_POOLS}, got {layer_pool!r}")
        if not ks or any(not 1 <= k <= MAX_K for k in ks):
            raise ValueError(f"tokens a position (k) must be in 1..{MAX_K}, got {ks}")
        self.embedding = [embedding]           # the receiver's frozen table: read, never trained nor saved here
        width = embedding.weight.shape[1]
        self.merges = nn.ModuleDict({str(k): MERGES[merge](k, width, hidden) for k in sorted(set(ks)) if k > 1})
        self.layer_merges = nn.ModuleDict({str(k): MERGES[layer_pool](k, width, pool_hidden)
                                           for k in sorted(set(ks)) if k > 1 and layer_pool != "mean"})
        """Learned pools of decoder-layer states, one per k (empty for the plain mean, layer_pool = mean); an MLP
        pool's hidden width is pool_hidden."""
        self.ks = tuple(sorted(set(ks)))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, k: int, focus: torch.Tensor | None = None,
                layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [B, T], mask [B, T] (left-aligned tokens), focus [B, T] or None, layout [B, M, g] or None ->
        embeds [B, M, d] (float32) and position mask [B, M]; M = ceil(T/k) without focus or layout, else the
        focus tokens plus the rest k to a position, or the layout's groups (balanced_layout; k unused)."""
        if k != 1 and k not in self.ks:     # k = 1 is the embeddings themselves: every reader reads it
            raise ValueError(f"this reader reads k in {self.ks}, not k={k}")
        embeds = self.embedding[0](ids).float() * mask[..., None]
        if layout is not None:
            return self._read_layout(embeds, layout.to(embeds.device))
        if k == 1:
            return embeds, mask
        if focus is None:
            groups, members = group_tokens(embeds, mask, k)
            single = None
        else:
            index, single = focus_layout(mask, focus, k)
            groups, members = gather_groups(embeds, index)
        positions = (members.sum(2) > 0).to(mask.dtype)
        out = self._merged(k, groups, members) * positions[..., None]
        if single is not None:                           # a focus token's position is its own embedding
            out = torch.where(single[..., None], groups[:, :, 0], out)
        return out, positions

    def _merged(self, k: int, groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """groups [B, M, k, d], members [B, M, k] -> the merge at k scaled to its members' RMS [B, M, d]."""
        merged = self.merges[str(k)](groups, members)
        target = (groups.pow(2).sum((2, 3)) / (members.sum(2) * groups.shape[-1]).clamp(min=1)).add(1e-12).sqrt()
        return merged * (target / merged.pow(2).mean(-1).add(1e-12).sqrt())[..., None]

    def pool_states(self, groups: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """Decoder-layer states in groups [B, M, g, d] with members [B, M, g] (packed from the left) -> one state a
        group [B, M, d]: the members' mean, or with a learned layer pool, the pool of the smallest k at least the
        group's size (which starts as the mean; a short group's missing members masked)."""
        if not self.layer_merges:
            return masked_mean(groups, members)
        return _by_size(groups, members, lambda k, g, m: self.layer_merges[str(k)](g, m),
                        lambda size: f"this reader pools groups of {[k for k in self.ks if k > 1]} states, "
                                     f"not {size}", self.ks)

    def _read_layout(self, embeds: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """embeds [B, T, d], index [B, M, g] -> each group merged by the merge of the smallest k at least its
        size (one token: its embedding) [B, M, d] and the position mask [B, M]."""
        groups, members = gather_groups(embeds, index)
        out = _by_size(groups, members, self._merged,
                       lambda size: f"this reader merges groups of {[k for k in self.ks if k > 1]} tokens, "
                                    f"a layout asks for {size}", self.ks)
        return out, (members.sum(2) > 0).to(torch.long)


def _by_size(groups: torch.Tensor, members: torch.Tensor, merge: Callable, refusal: Callable[[int], str],
             ks: tuple[int, ...]) -> torch.Tensor:
    """groups [B, M, g, d], members [B, M, g] -> [B, M, d]: a group of one member is that member, an empty one
    0, a larger one `merge(k, groups [1, n, k, d], members [1, n, k])` with the other groups of its size, k the
    smallest of `ks` at least its size (a short group, e.g. a context's last at k = 4 with 3 tokens, is read as
    a group of k with its missing members masked, as the embedding merge reads it); a size above every k
    raises ValueError(refusal(size))."""
    sizes = members.sum(2)
    out = masked_mean(groups, members)
    for size in sorted(set(sizes.unique().tolist()) - {0, 1}):
        k = min((trained for trained in ks if trained >= size), default=None)
        if k is None:
            raise ValueError(refusal(size))
        at = sizes == size
        chosen, present = groups[at][None, :, :size], members[at][None, :, :size]
        chosen = torch.nn.functional.pad(chosen, (0, 0, 0, k - size))
        present = torch.nn.functional.pad(present, (0, k - size))
        out = out.index_put((at,), merge(k, chosen, present)[0].to(out.dtype))
    return out


class SharedTokenReader(nn.Module):
    """A TokenMergeReader fed shared-vocabulary ids (what a version 2 packet carries): shared ids [B, T] are
    mapped to this receiver's own ids (`receiver_ids` [n], SharedVocabulary.receiver_ids) and read k to a
    position."""

    def __init__(self, receiver_ids: list[int], embedding: nn.Embedding, merge: str = "weighted",
                 ks: tuple[int, ...] = (1, 2, 3, 4), hidden: int = 128, layer_pool: str = "mean",
                 pool_hidden: int = 128):
        super().__init__()
        self.register_buffer("to_receiver", torch.tensor(receiver_ids, dtype=torch.long), persistent=False)
        self.reader = TokenMergeReader(embedding, merge, ks, hidden, layer_pool, pool_hidden)

    def forward(self, shared_ids: torch.Tensor, mask: torch.Tensor, k: int, focus: torch.Tensor | None = None,
                layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """shared ids [B, T], mask [B, T], focus [B, T] or None, layout [B, M, g] or None -> embeds
        [B, M, d_model], position mask [B, M] (TokenMergeReader.forward)."""
        ids = self.to_receiver.to(shared_ids.device)[shared_ids] * mask
        return self.reader(ids, mask, k, focus, layout)
