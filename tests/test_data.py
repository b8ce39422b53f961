"""The replay mixture sampler and the bin reader (data.py)."""
import pytest
import torch

import data as datalib
from synth import make_bin


@pytest.fixture
def two_bins(tmp_path):
    make_bin(tmp_path, 'de', n_train=50000, seed=1)
    make_bin(tmp_path, 'en', n_train=50000, seed=2)
    return str(tmp_path)


def test_weights_are_normalised_and_validated():
    assert datalib.normalise_weights({'de': 3, 'en': 1}) == {'de': 0.75, 'en': 0.25}
    assert datalib.normalise_weights('en') == {'en': 1.0}
    for bad, msg in (({'en': -1}, 'non-negative'), ({'en': 0, 'de': 0.0}, 'sum to zero'), ({}, 'dict'),
                     ({'en': 'x'}, 'non-negative'), ({'en': float('nan')}, 'non-negative')):
        with pytest.raises(ValueError, match=msg):
            datalib.normalise_weights(bad)


def test_mixture_share_matches_weights(two_bins):
    m = datalib.Mixture(two_bins, {'de': 0.95, 'en': 0.05}, block_size=16, batch_size=8, grad_accum=4,
                        world_size=2, seed=0)
    counts = {'de': 0, 'en': 0}
    for step in range(400):
        for k, v in m.samples_per_dataset(step).items():
            counts[k] += v
    share = counts['en'] / sum(counts.values())
    # 25,600 draws of a 5% weight: the binomial standard deviation is 0.14%, so 0.5% is a generous bound
    assert abs(share - 0.05) < 0.005, share


def test_no_two_samples_of_a_step_share_a_window(tmp_path):
    # random tokens: two different windows cannot look alike by chance, so equal content means the same window
    make_bin(tmp_path, 'de', n_train=50000, seed=1, kind='random')
    make_bin(tmp_path, 'en', n_train=50000, seed=2, kind='random')
    m = datalib.Mixture(str(tmp_path), {'de': 0.5, 'en': 0.5}, block_size=16, batch_size=8, grad_accum=3,
                        world_size=4, seed=0)
    for step in range(20):
        seen = set()
        for micro in range(3):
            for rank in range(4):
                x, _ = m.get_batch(step, micro, rank)
                for row in x:
                    key = tuple(row.tolist())
                    assert key not in seen, f"step {step}: a window drawn twice"
                    seen.add(key)
        assert len(seen) == 8 * 3 * 4


def test_batches_are_a_pure_function_of_seed_step_micro_rank(two_bins):
    args = (two_bins, {'de': 0.75, 'en': 0.25}, 16, 4, 2, 2)
    a, b = datalib.Mixture(*args, seed=7), datalib.Mixture(*args, seed=7)
    seq_a = [a.get_batch(s, mi, r)[0] for s in range(5) for mi in range(2) for r in range(2)]
    # b is asked in another order (as a resumed run would be): same answers
    seq_b = {(s, mi, r): b.get_batch(s, mi, r)[0] for s in reversed(range(5)) for r in range(2) for mi in range(2)}
    assert all(torch.equal(x, seq_b[k]) for x, k in zip(seq_a, [(s, mi, r) for s in range(5) for mi in range(2) for r in range(2)]))
    c = datalib.Mixture(*args, seed=8)
    assert not torch.equal(c.get_batch(0, 0, 0)[0], seq_a[0])


def test_targets_are_inputs_shifted_by_one(two_bins):
    m = datalib.Mixture(two_bins, 'de', 16, 2, 1, 1, seed=0)
    x, y = m.get_batch(3, 0, 0)
    assert x.dtype == torch.int64 and x.shape == (2, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_validation_windows_are_fixed_and_cover_the_bin(two_bins):
    offs = datalib.val_offsets(4000, 16, 0)
    assert len(offs) == (4000 - 1) // 16 and offs[1] == 16
    few = datalib.val_offsets(4000, 16, 10)
    assert len(few) == 10 and few[0] == 0 and few[-1] == 4000 - 1 - 16
    # ranks split the windows without overlap
    all_x = torch.cat([x for x, _ in datalib.val_batches(two_bins, 'de', 16, 5, 12)])
    split = torch.cat([x for r in range(3) for x, _ in datalib.val_batches(two_bins, 'de', 16, 5, 12, r, 3)])
    assert sorted(map(tuple, all_x.tolist())) == sorted(map(tuple, split.tolist()))


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match='prepare'):
        datalib.Mixture(str(tmp_path), {'nope': 1.0}, 16, 2, 1, 1, 0)
    make_bin(tmp_path, 'a', tokenizer='gpt2')
    make_bin(tmp_path, 'b', tokenizer='demo8k')
    with pytest.raises(ValueError, match='different tokenizers'):
        datalib.Mixture(str(tmp_path), {'a': 1, 'b': 1}, 16, 2, 1, 1, 0)
    make_bin(tmp_path, 'tiny', n_train=10)
    with pytest.raises(ValueError, match='fewer than one window'):
        datalib.Mixture(str(tmp_path), {'tiny': 1}, 16, 2, 1, 1, 0)


def test_uint32_bins_read_back(tmp_path):
    make_bin(tmp_path, 'big', vocab_size=100_000, kind='random')
    m = datalib.Mixture(str(tmp_path), 'big', 16, 2, 1, 1, 0)
    assert datalib.load_meta(str(tmp_path), 'big')['dtype'] == 'uint32'
    x, _ = m.get_batch(0, 0, 0)
    assert x.max() < 100_000 and x.max() > 65536


def test_each_epoch_reads_every_window_once(tmp_path):
    make_bin(tmp_path, 'en', n_train=16 * 50 + 1, kind='random')  # exactly 50 windows of 16 tokens
    m = datalib.Mixture(str(tmp_path), 'en', block_size=16, batch_size=5, grad_accum=1, world_size=2, seed=3)
    first = [o for s in range(5) for o in m.plan(s)[1]]   # 5 steps x 10 sequences = one epoch
    second = [o for s in range(5, 10) for o in m.plan(s)[1]]
    assert sorted(first) == sorted(second) == [16 * i for i in range(50)]
    assert first != second  # each epoch in its own order


def test_replay_rereads_what_pretraining_saw(two_bins):
    pre = datalib.Mixture(two_bins, {'en': 1.0}, 16, 8, 1, 1, seed=0)
    seen = {o for s in range(100) for o in pre.plan(s)[1]}
    cpt = datalib.Mixture(two_bins, {'de': 0.75, 'en': 0.25}, 16, 8, 1, 1, seed=0)
    replayed = [o for s in range(100) for i, o in zip(*cpt.plan(s)) if cpt.names[i] == 'en']
    assert len(replayed) == 200 and set(replayed) <= seen
