"""The replay mixture sampler and the bin reader (data.py)."""
import json
import math

import numpy as np
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


def test_the_epoch_order_is_a_permutation_at_any_size():
    for n in (1, 2, 3, 5, 64, 1000, 4097, 1_000_003):
        order = datalib.permute(np.arange(n), n, (1, 2, 3))
        assert np.array_equal(np.sort(order), np.arange(n)), n
    assert not np.array_equal(datalib.permute(np.arange(1000), 1000, (1, 2, 3)),
                              datalib.permute(np.arange(1000), 1000, (1, 2, 4)))


@pytest.mark.parametrize('per_step', [16, 1104])
def test_batches_cover_the_bin_as_random_sampling_does(per_step):
    # Cut the bin into 100 equal slices and count the slices each batch touches, for the stream and for uniform
    # random sampling (without replacement), at the Pile's size: 40 seeds x 10 consecutive batches each. Bins hold
    # their sources one after another, so a batch that touches few slices reads a curriculum, not a mixture.
    W, rng = 146_000_000, np.random.default_rng(0)
    ours, rand = [], []
    for seed in range(40):
        stream = datalib.Stream(W, (seed, 7, 0))
        for b in range(10):
            ours.append(len(np.unique(stream(np.arange(per_step) + (seed * 10 + b) * per_step) * 100 // W)))
            rand.append(len(np.unique(rng.choice(W, per_step, replace=False) * 100 // W)))
    se = math.sqrt((np.var(ours) + np.var(rand)) / len(ours)) + 1e-9
    assert abs(np.mean(ours) - np.mean(rand)) < 4 * se + 0.05, (np.mean(ours), np.mean(rand))
    assert min(ours) >= min(rand) - 2, (min(ours), min(rand))


def test_consecutive_draws_are_not_a_fixed_stride_apart():
    # the old order (a i + b mod W) put every draw a fixed stride after the one before it: two distinct gaps
    k = np.arange(1000)
    gaps = np.diff(datalib.Stream(1_000_000, (3, 7, 0))(k))
    assert len(np.unique(gaps)) > 990


def test_each_epoch_reads_every_window_once(tmp_path):
    make_bin(tmp_path, 'en', n_train=16 * 50 + 1, kind='random')  # exactly 50 windows of 16 tokens
    m = datalib.Mixture(str(tmp_path), 'en', block_size=16, batch_size=5, grad_accum=1, world_size=2, seed=3)
    first = [o for s in range(5) for o in m.plan(s)[1]]   # 5 steps x 10 sequences = one epoch
    second = [o for s in range(5, 10) for o in m.plan(s)[1]]
    assert sorted(first) == sorted(second) == [16 * i for i in range(50)]
    assert first != second  # each epoch in its own order


def test_no_window_twice_in_a_step_across_epoch_boundaries(tmp_path):
    make_bin(tmp_path, 'en', n_train=16 * 50 + 1, kind='random')  # 50 windows, 12 per step: most epochs end mid-step
    m = datalib.Mixture(str(tmp_path), 'en', block_size=16, batch_size=6, grad_accum=1, world_size=2, seed=5)
    reads = []
    for s in range(50):
        offs = list(m.plan(s)[1])
        assert len(set(offs)) == len(offs), f"step {s} reads a window twice"
        reads += offs
    for e in range(len(reads) // 50):  # and still every window once per epoch
        assert sorted(reads[50 * e:50 * (e + 1)]) == [16 * i for i in range(50)]
    assert m.new_epochs(4) == ['data: en starts epoch 1 (every window once more) at step 4']  # 48 < 50 <= 60
    assert m.new_epochs(5) == [] and m.new_epochs(0) == []


def reads(m, steps, name):
    """Window offsets dataset `name` gave to the steps, in order."""
    return [o for s in steps for i, o in zip(*m.plan(s)) if m.names[i] == name]


def phase(data_dir, data, lineage=None, replay=None, seed=0, block_size=16):
    return datalib.Mixture(data_dir, data, block_size, 8, 1, 1, seed, replay=replay, lineage=lineage)


def test_a_new_phase_continues_each_stream(two_bins):
    pre = phase(two_bins, {'en': 1.0})
    main_line = reads(pre, range(100), 'en')                           # 800 of en's 3,124 windows
    branch = phase(two_bins, {'en': 1.0}, pre.state(100))              # an anneal branch of the same data
    assert not set(reads(branch, range(100), 'en')) & set(main_line)   # only windows the main line did not read
    mixed = phase(two_bins, {'de': 0.75, 'en': 0.25}, pre.state(100))  # new D0 data mixed in: unseen windows too
    assert not set(reads(mixed, range(100), 'en')) & set(main_line)
    assert reads(mixed, range(100), 'de') == reads(phase(two_bins, {'de': 0.75, 'en': 0.25}), range(100), 'de')
    # a dataset the lineage never read starts at its beginning; the record keeps what this phase did not touch
    state = mixed.state(100)
    assert state['en']['drawn'] == 1000 and state['de']['drawn'] == 600
    assert json.loads(json.dumps(state)) == state  # plain data: it goes into checkpoints and JSON


def test_replay_reads_only_seen_windows_and_later_phases_replay_different_ones(two_bins):
    pre = phase(two_bins, {'en': 1.0})
    seen = set(reads(pre, range(100), 'en'))
    first = phase(two_bins, {'de': 0.75}, pre.state(100), replay={'en': 0.25})
    r1 = reads(first, range(100), 'en')
    assert len(r1) == 200 and set(r1) <= seen and len(set(r1)) == 200
    assert r1 != reads(pre, range(25), 'en')  # a fresh order, not pre-training's again
    second = phase(two_bins, {'de': 0.75}, first.state(100), replay={'en': 0.25})
    r2 = reads(second, range(100), 'en')
    assert set(r2) <= seen and not set(r2) & set(r1)  # the replay stream continued
    assert not set(reads(second, range(100), 'de')) & set(reads(first, range(100), 'de'))
    # when the seen set is used up, a new pass reshuffles it: every seen window once per pass
    third = phase(two_bins, {'de': 0.5}, second.state(100), replay={'en': 0.5})
    r3 = reads(third, range(200), 'en')      # 800 replays: the rest of pass 0 (400), then half of pass 1 (400)
    assert sorted(r1 + r2 + r3[:400]) == sorted(seen) and set(r3[400:]) <= seen
    assert third.state(200)['en']['replay'] == {'seen': 800, 'passes': 0, 'drawn': 1200, 'seed': 0}
    assert third.new_epochs(100) == ['data: replay of en starts pass 1 over its 800 seen windows at step 100']
    # reading en on as data grows the seen set; the next replay makes a new pass over all of it
    more = phase(two_bins, {'en': 1.0}, third.state(200))
    grown = seen | set(reads(more, range(10), 'en'))
    again = phase(two_bins, {'de': 0.75}, more.state(10), replay={'en': 0.25})
    assert set(reads(again, range(100), 'en')) <= grown and again.replay['en'].n == 880
    assert again.state(0)['en']['replay'] == {'seen': 880, 'passes': 2, 'drawn': 0, 'seed': 0}


def test_lineage_mismatch_and_bad_replay_stop_with_one_clear_message(two_bins, tmp_path):
    state = phase(two_bins, {'en': 1.0}).state(10)
    with pytest.raises(ValueError, match="block_size=16, this run has block_size=32"):
        phase(two_bins, {'de': 0.5}, state, replay={'en': 0.5}, block_size=32)
    phase(two_bins, {'de': 1.0}, state, seed=1)  # a dataset the phase does not read is not checked
    changed = {**state, 'en': {**state['en'], 'bin': 'another'}}
    with pytest.raises(ValueError, match="not the bin.*its tokens"):
        phase(two_bins, {'en': 1.0}, changed)
    with pytest.raises(ValueError, match="has never read 'de'"):
        phase(two_bins, {'en': 0.5}, state, replay={'de': 0.5})
    with pytest.raises(ValueError, match="starts no lineage"):
        phase(two_bins, {'en': 0.5}, replay={'de': 0.5})
    with pytest.raises(ValueError, match="both data and replay"):
        phase(two_bins, {'en': 0.5, 'de': 0.25}, state, replay={'en': 0.25})
    with pytest.raises(ValueError, match="replay must be a dict"):
        phase(two_bins, {'en': 0.5}, state, replay=['en'])
    few = phase(two_bins, {'en': 1.0}).state(1)   # 8 windows read: too few to replay 4 per step without repeats
    with pytest.raises(ValueError, match="replays from the 8 windows.*a quarter"):
        phase(two_bins, {'de': 0.5}, few, replay={'en': 0.5})




def test_a_phase_takes_its_own_seed_for_what_is_new_to_it(two_bins):
    pre = phase(two_bins, {'en': 1.0})
    main_line = reads(pre, range(100), 'en')
    # en's stream keeps the lineage's seed at any phase seed: the branch reads on exactly where the main line stopped
    on = [phase(two_bins, {'en': 1.0}, pre.state(100), seed=s) for s in (0, 1)]
    assert all(m.stream['en'].key == pre.stream['en'].key for m in on)
    assert not set(reads(on[1], range(10), 'en')) & set(main_line)
    assert on[1].state(10)['en']['seed'] == 0
    # what is new to the phase (de's stream, en's replay order) follows its seed: three seeds, three branches
    seeds = [phase(two_bins, {'de': 0.75}, pre.state(100), replay={'en': 0.25}, seed=s) for s in (1, 2, 3)]
    replays = [reads(m, range(20), 'en') for m in seeds]
    assert all(set(r) <= set(main_line) for r in replays) and len({tuple(r) for r in replays}) == 3
    assert len({tuple(reads(m, range(20), 'de')) for m in seeds}) == 3
    state = seeds[1].state(20)
    assert state['de']['seed'] == 2 and state['en']['seed'] == 0 and state['en']['replay']['seed'] == 2
    # the next phase (seed 9) carries that replay stream on in its seed: the other windows of the same pass
    nxt = phase(two_bins, {'de': 0.75}, state, replay={'en': 0.25}, seed=9)
    assert not set(reads(nxt, range(20), 'en')) & set(replays[1])
    assert nxt.replay['en'].key == seeds[1].replay['en'].key


def test_a_bin_is_known_by_its_tokens_not_by_when_it_was_prepared(tmp_path):
    import time

    from prepare.writer import write_bins
    docs = [{'text': f"document {i}: " + 'the quick brown fox ' * (i % 7 + 20)} for i in range(300)]
    write_bins(docs, 'en', tokenizer='gpt2', data_dir=tmp_path, num_proc=1, val_fraction=0.1, progress=False)
    state = datalib.Mixture(str(tmp_path), 'en', 16, 4, 1, 1, seed=0).state(10)
    time.sleep(1.1)  # meta.json's `created` is in seconds: the same bin prepared again has another one
    write_bins(docs, 'en', tokenizer='gpt2', data_dir=tmp_path, num_proc=1, val_fraction=0.1, progress=False,
               overwrite=True)
    assert datalib.meta_hash(str(tmp_path), 'en') != state['en'].get('meta')
    again = datalib.Mixture(str(tmp_path), 'en', 16, 4, 1, 1, seed=0, lineage=state)  # the lineage continues
    assert again.start['en'] == 40
    # a bin without the tokens' hash in its meta.json (prepared before, or by hand) is known by samples of them
    make_bin(tmp_path, 'syn', n_train=300000, seed=1)
    state = datalib.Mixture(str(tmp_path), 'syn', 16, 4, 1, 1, seed=0).state(10)
    meta = json.loads((tmp_path / 'syn' / 'meta.json').read_text())
    (tmp_path / 'syn' / 'meta.json').write_text(json.dumps({**meta, 'created': 'later'}))
    datalib.Mixture(str(tmp_path), 'syn', 16, 4, 1, 1, seed=0, lineage=state)
    make_bin(tmp_path, 'syn', n_train=300000, seed=2)  # other tokens, the same size: not the bin the lineage read
    with pytest.raises(ValueError, match="not the bin.*its tokens"):
        datalib.Mixture(str(tmp_path), 'syn', 16, 4, 1, 1, seed=0, lineage=state)
    # a record written before bin identities (a hash of meta.json) is still checked that way
    old = {'syn': {k: v for k, v in state['syn'].items() if k != 'bin'}}
    old['syn']['meta'] = datalib.meta_hash(str(tmp_path), 'syn')
    datalib.Mixture(str(tmp_path), 'syn', 16, 4, 1, 1, seed=0, lineage=old)


def test_a_step_may_take_more_than_guard_windows_of_a_big_dataset(tmp_path):
    make_bin(tmp_path, 'big', n_train=190001, kind='random')  # 190,000 windows of 1 token: 9.5 steps an epoch
    m = datalib.Mixture(str(tmp_path), 'big', block_size=1, batch_size=20000, grad_accum=1, world_size=1, seed=3)
    assert m.n > datalib.GUARD and m.stream['big'].guard == 20000 and m.state(1)['big']['guard'] == 20000
    for step in (0, 9, 28):  # 9 and 28 span an epoch boundary
        offs = m.plan(step)[1]
        assert len(set(offs.tolist())) == len(offs) == 20000
    # a later phase reads the stream in the guard it was made with, even with smaller steps
    nxt = datalib.Mixture(str(tmp_path), 'big', 1, 1000, 1, 1, seed=3, lineage=m.state(10))
    assert nxt.stream['big'].guard == 20000 and nxt.window('big', np.arange(5)).tolist() == \
        m.window('big', 200000 + np.arange(5)).tolist()


def test_the_epoch_head_cache_stays_small():
    s, fresh = datalib.Stream(100, (1, 2, 0)), datalib.Stream(100, (1, 2, 0))
    got = s(np.arange(5000))  # 50 epochs
    assert len(s._heads) <= 2
    assert got.tolist() == [int(fresh(np.array([k]))[0]) for k in range(5000)]
