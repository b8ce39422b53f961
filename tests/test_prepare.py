"""prepare/: tokenizers, the bin writer, bad input, the paper's dataset scripts on hub-shaped fixtures, the demo corpora."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from prepare import REPO_ROOT, default_data_dir
from prepare.tokenizer import EOT, get_tokenizer, tokenizer_hash, train_bpe

DOCS = [f"Document {i}: the quick brown fox jumps over {i * 7} lazy dogs. Ünïcödé ✓ {'x' * (i % 13)}" for i in range(300)]


def write_jsonl(path, rows):
    with open(path, 'w') as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + '\n')
    return str(path)


def read_bin(data_dir, name, split):
    meta = json.load(open(os.path.join(data_dir, name, 'meta.json')))
    return np.memmap(os.path.join(data_dir, name, f'{split}.bin'), dtype=meta['dtype'], mode='r'), meta


def split_docs(ids, enc):
    """Decoded documents of a bin, relying on doc EOT doc EOT ... (the last token is always EOT)."""
    eot = enc.encode_single_token(EOT)
    assert len(ids) == 0 or ids[-1] == eot
    text = enc.decode([int(t) for t in ids])
    return text.split(EOT)[:-1]


def prepare_text(*args):
    from prepare import text
    return text.main([str(a) for a in args])


# -----------------------------------------------------------------------------
# tokenizers

def test_gpt2_offline_in_a_fresh_cache(tmp_path):
    # a fresh process with an empty tiktoken cache: only the packaged vocabulary can make this work offline
    code = ("from prepare.tokenizer import get_tokenizer, tokenizer_hash; e = get_tokenizer('gpt2'); "
            "print(e.encode('hello world'), e.n_vocab, tokenizer_hash(e) == tokenizer_hash(get_tokenizer('r50k_base')))")
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(tmp_path / 'cache'))
    r = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split('\n')[0] == '[31373, 995] 50257 True'


def test_unknown_tokenizer_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='python -m prepare.tokenizer'):
        get_tokenizer('nosuch', data_dir=tmp_path)


def test_custom_bpe_trains_saves_reloads(tmp_path):
    path = tmp_path / 'tokenizers' / 'tiny.tiktoken'
    enc = train_bpe(iter(DOCS), 400, str(path))
    again = get_tokenizer('tiny', data_dir=tmp_path)  # by name, from the file
    assert enc.n_vocab == again.n_vocab <= 400 and again.encode_single_token(EOT) == again.n_vocab - 1
    for doc in DOCS[:20] + ['unseen words: Zebra 12345 ☃']:
        ids = again.encode_ordinary(doc)
        assert ids == enc.encode_ordinary(doc) and again.decode(ids) == doc
    assert tokenizer_hash(enc) == tokenizer_hash(str(path)) != tokenizer_hash(get_tokenizer('gpt2'))
    # retrained in place on other text: the new file is what loads (tiktoken's own reader would cache the old one)
    train_bpe(iter(d.upper() for d in DOCS), 400, str(path))
    assert tokenizer_hash(str(path)) != tokenizer_hash(enc)

    meta = prepare_text('--name', 'c', '--input', write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS]),
                        '--tokenizer', 'tiny', '--data_dir', tmp_path, '--val_fraction', 0.1, '--num_proc', 1)
    assert meta['tokenizer'] == 'tiny' and meta['tokenizer_hash'] == tokenizer_hash(str(path))
    assert meta['vocab_size'] == get_tokenizer('tiny', tmp_path).n_vocab and meta['dtype'] == 'uint16'


def test_broken_tiktoken_file_is_named(tmp_path):
    bad = tmp_path / 'bad.tiktoken'
    bad.write_text('not base64 at all\n')
    with pytest.raises(ValueError, match='not a .tiktoken file'):
        get_tokenizer(str(bad))


# -----------------------------------------------------------------------------
# the writer

def test_round_trip_documents_separated_by_eot(tmp_path):
    meta = prepare_text('--name', 'rt', '--input', write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS]),
                        '--data_dir', tmp_path, '--val_fraction', 0.1, '--num_proc', 1)
    enc = get_tokenizer('gpt2')
    train, _ = read_bin(tmp_path, 'rt', 'train')
    val, _ = read_bin(tmp_path, 'rt', 'val')
    tr, va = split_docs(train, enc), split_docs(val, enc)
    assert tr + va and sorted(tr + va) == sorted(DOCS)
    assert tr == [d for d in DOCS if d in set(tr)]  # input order kept
    assert meta['dtype'] == 'uint16' and meta['eot_id'] == 50256 and meta['vocab_size'] == 50257
    assert (meta['train_tokens'], meta['val_tokens'], meta['train_docs'], meta['val_docs']) == (len(train), len(val), len(tr), len(va))
    assert meta['train_bytes'] + meta['val_bytes'] == sum(len(d.encode()) for d in DOCS)
    assert not [f for f in os.listdir(tmp_path / 'rt') if f.endswith('.tmp')]
    assert os.path.exists(tmp_path / 'rt' / 'CARD.md')


def test_txt_folder_and_parquet_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    (tmp_path / 'txt').mkdir()
    for i, d in enumerate(DOCS[:40]):
        (tmp_path / 'txt' / f'{i:03d}.txt').write_text(d)
    meta = prepare_text('--name', 't', '--input', tmp_path / 'txt', '--data_dir', tmp_path, '--val_fraction', 0.2, '--num_proc', 1)
    assert meta['train_docs'] + meta['val_docs'] == 40  # one document per .txt file
    pq.write_table(pa.table({'content': DOCS[:50], 'n': list(range(50))}), tmp_path / 'x.parquet')
    meta = prepare_text('--name', 'p', '--input', tmp_path / 'x.parquet', '--text_field', 'content', '--data_dir', tmp_path,
                        '--val_fraction', 0.2, '--num_proc', 1)
    assert meta['train_docs'] + meta['val_docs'] == 50


def test_val_split_deterministic_and_disjoint(tmp_path):
    src = write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS + DOCS[:50]])  # duplicates included
    a = prepare_text('--name', 'a', '--input', src, '--data_dir', tmp_path, '--val_fraction', 0.2, '--num_proc', 1)
    b = prepare_text('--name', 'b', '--input', src, '--data_dir', tmp_path, '--val_fraction', 0.2, '--num_proc', 2)
    for split in ('train', 'val'):  # same bytes whatever the number of worker processes
        assert np.array_equal(read_bin(tmp_path, 'a', split)[0], read_bin(tmp_path, 'b', split)[0])
    enc = get_tokenizer('gpt2')
    tr, va = (set(split_docs(read_bin(tmp_path, 'a', s)[0], enc)) for s in ('train', 'val'))
    assert tr and va and not tr & va  # a document (and any copy of it) lives in one split only
    assert 0.1 < a['val_docs'] / (a['train_docs'] + a['val_docs']) < 0.3
    assert a['train_tokens'] == b['train_tokens']


def test_max_tokens_budget(tmp_path):
    src = write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS])
    meta = prepare_text('--name', 'm', '--input', src, '--data_dir', tmp_path, '--max_tokens', 500, '--val_fraction', 0.3, '--num_proc', 1)
    longest = max(len(get_tokenizer('gpt2').encode_ordinary(d)) + 1 for d in DOCS)
    assert 500 <= meta['train_tokens'] < 500 + longest  # whole documents: the last one may pass the budget
    assert read_bin(tmp_path, 'm', 'train')[0][-1] == 50256


def test_uint32_for_a_100k_vocab(tmp_path):
    try:
        enc, name = get_tokenizer('cl100k_base'), 'cl100k_base'
    except RuntimeError:  # no offline copy: a custom vocabulary past 2**16 (ids above 65535 appear in the text)
        import base64
        ranks = {bytes([b]): b for b in range(256)}
        ranks.update({f'w{i}'.encode(): 256 + i for i in range(70000)})
        name = str(tmp_path / 'big.tiktoken')
        with open(name, 'wb') as f:
            f.writelines(base64.b64encode(t) + b' %d\n' % r for t, r in ranks.items())
        enc = get_tokenizer(name)
    assert enc.n_vocab > 65536
    docs = [f"w69999 w123 hello world {i} Grüße 你好" for i in range(200)]
    meta = prepare_text('--name', 'big', '--input', write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in docs]),
                        '--tokenizer', name, '--data_dir', tmp_path, '--val_fraction', 0.1, '--num_proc', 1)
    train, meta = read_bin(tmp_path, 'big', 'train')
    assert meta['dtype'] == 'uint32' and os.path.getsize(tmp_path / 'big' / 'train.bin') == 4 * len(train)
    eot = enc.encode_single_token(EOT)
    assert eot > 65535 or enc.encode_ordinary('w69999')[0] > 65535
    from prepare.writer import is_val
    expected = [t for d in docs if not is_val(d.encode(), 0.1) for t in enc.encode_ordinary(d) + [eot]]
    assert np.array_equal(np.asarray(train), np.array(expected, dtype=np.uint32))


# -----------------------------------------------------------------------------
# bad input: one clear message each

def expect_exit(match, *args):
    with pytest.raises(SystemExit) as e:
        prepare_text(*args)
    assert isinstance(e.value.code, str) and e.value.code.startswith('error: '), e.value.code
    assert match in e.value.code, e.value.code


def test_empty_input(tmp_path):
    (tmp_path / 'empty.jsonl').write_text('')
    expect_exit('empty', '--name', 'e', '--input', tmp_path / 'empty.jsonl', '--data_dir', tmp_path, '--num_proc', 1)
    write_jsonl(tmp_path / 'blank.jsonl', [{'text': ''}] * 3)
    expect_exit('empty', '--name', 'e', '--input', tmp_path / 'blank.jsonl', '--data_dir', tmp_path, '--num_proc', 1)
    assert not os.path.exists(tmp_path / 'e' / 'meta.json') and not os.path.exists(tmp_path / 'e' / 'train.bin')


def test_invalid_utf8(tmp_path):
    (tmp_path / 'bad.jsonl').write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9 latin-1"}\n')
    expect_exit('not valid UTF-8', '--name', 'u', '--input', tmp_path / 'bad.jsonl', '--data_dir', tmp_path)
    (tmp_path / 'bad.txt').write_bytes(b'ok\n\xff\xfe\n')
    expect_exit('bad.txt is not valid UTF-8 (byte 3', '--name', 'u', '--input', tmp_path / 'bad.txt', '--data_dir', tmp_path)


def test_missing_text_field(tmp_path):
    src = write_jsonl(tmp_path / 'd.jsonl', [{'body': d} for d in DOCS[:5]])
    expect_exit("no text field 'text' (its fields: ['body'])", '--name', 'f', '--input', src, '--data_dir', tmp_path, '--num_proc', 1)
    src = write_jsonl(tmp_path / 'n.jsonl', [{'text': 5}])
    expect_exit('not text', '--name', 'f', '--input', src, '--data_dir', tmp_path, '--num_proc', 1)
    expect_exit('no such file', '--name', 'f', '--input', tmp_path / 'nope.jsonl', '--data_dir', tmp_path)


def test_existing_output_refused_unless_overwrite(tmp_path):
    src = write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS])
    args = ('--name', 'x', '--input', src, '--data_dir', tmp_path, '--val_fraction', 0.1, '--num_proc', 1)
    first = prepare_text(*args)
    expect_exit('--overwrite', *args)
    assert prepare_text(*args, '--overwrite', '--max_tokens', 2000)['train_tokens'] < first['train_tokens']


def test_failure_midway_leaves_no_complete_bin(tmp_path):
    from prepare.writer import write_bins

    def rows(n_ok):
        for i, d in enumerate(DOCS * 50):
            if i == n_ok:
                raise RuntimeError('disk on fire')
            yield {'text': d}

    with pytest.raises(RuntimeError, match='disk on fire'):
        write_bins(rows(5000), 'k', data_dir=tmp_path, num_proc=1, progress=False)
    assert sorted(os.listdir(tmp_path / 'k')) == []  # no meta.json, no bin, no temp file

    # an --overwrite that fails keeps the old dataset whole and complete
    old = write_bins(({'text': d} for d in DOCS), 'k', data_dir=tmp_path, num_proc=1, val_fraction=0.1, progress=False)
    old_train = np.array(read_bin(tmp_path, 'k', 'train')[0])
    with pytest.raises(RuntimeError):
        write_bins(rows(5000), 'k', data_dir=tmp_path, num_proc=1, overwrite=True, progress=False)
    train, meta = read_bin(tmp_path, 'k', 'train')
    assert meta == old and np.array_equal(train, old_train)


def test_killed_prepare_leaves_no_complete_bin(tmp_path):
    code = f"""
import os, sys, time
from prepare.writer import write_bins
def rows():
    for i in range(10**6):
        if i == 40:  # two batches are on disk by now: say so, then hang until killed
            open({str(tmp_path / 'ready')!r}, 'w').close()
            time.sleep(60)
        yield {{'text': 'word ' * 100000}}
write_bins(rows(), 'killed', data_dir={str(tmp_path)!r}, num_proc=1, val_fraction=0, progress=False)
"""
    p = subprocess.Popen([sys.executable, '-c', code], cwd=REPO_ROOT, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not os.path.exists(tmp_path / 'ready'):
        assert p.poll() is None, p.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    files = sorted(os.listdir(tmp_path / 'killed'))
    assert 'meta.json' not in files and 'train.bin' not in files, files
    assert os.path.getsize(tmp_path / 'killed' / 'train.bin.tmp') > 0  # it did get halfway
    # what is left is not "existing output": the same command just runs again
    src = write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS])
    meta = prepare_text('--name', 'killed', '--input', src, '--data_dir', tmp_path, '--val_fraction', 0.1, '--num_proc', 1)
    assert sorted(os.listdir(tmp_path / 'killed')) == ['CARD.md', 'meta.json', 'train.bin', 'val.bin'] and meta['train_docs']


# -----------------------------------------------------------------------------
# the paper's datasets, on local files shaped like the hub's

def test_slimpajama_domains_in_proportion(tmp_path):
    from prepare import slimpajama
    rng = np.random.default_rng(0)
    domains = list(slimpajama.DOMAINS)
    rows = [{'text': f"{domains[k]} document {i} " + 'lorem ipsum ' * int(rng.integers(5, 30)),
             'meta': {'redpajama_set_name': domains[k]}} for i, k in enumerate(rng.integers(0, 7, 3000))]
    rows[1]['meta'] = json.dumps(rows[1]['meta'])  # some copies store meta as a JSON string
    src = write_jsonl(tmp_path / 'example_train_0.jsonl', rows)
    meta = slimpajama.main(['--input', src, '--max_tokens', '20000', '--data_dir', str(tmp_path), '--num_proc', '1',
                            '--val_fraction', '0.01'])
    assert meta['name'] == 'slimpajama' and set(meta['groups']) == set(domains)
    for d, share in slimpajama.DOMAINS.items():
        got = meta['groups'][d]['train']['tokens']
        assert share * 20000 <= got < share * 20000 + 80, (d, got)  # its share, plus at most one document
    assert meta['skipped_over_budget_docs'] > 0


def test_pile_and_german_scripts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from prepare import german, pile
    sets = ['Pile-CC', 'ArXiv', 'Github']
    rows = [{'text': f"pile doc {i} " + 'alpha beta ' * (i % 17 + 3), 'meta': {'pile_set_name': sets[i % 3]}} for i in range(400)]
    meta = pile.main(['--input', write_jsonl(tmp_path / '00.jsonl', rows), '--data_dir', str(tmp_path), '--num_proc', '1',
                      '--val_fraction', '0.05'])
    assert set(meta['groups']) == set(sets) and meta['tokenizer'] == 'gpt2' and meta['name'] == 'pile'
    # FineWeb-2's layout: a dataset folder whose README declares the deu_Latn config; read through the hub code path
    repo = tmp_path / 'fineweb-2'
    (repo / 'data' / 'deu_Latn' / 'train').mkdir(parents=True)
    (repo / 'README.md').write_text("---\nconfigs:\n- config_name: deu_Latn\n  data_files:\n  - split: train\n"
                                    "    path: data/deu_Latn/train/*\n---\n")
    texts = [f"Das ist das {i}. Dokument über Grüße, Straßen und Bäume." * (i % 5 + 1) for i in range(300)]
    pq.write_table(pa.table({'text': texts, 'id': [str(i) for i in range(300)], 'language_score': [0.99] * 300}),
                   repo / 'data' / 'deu_Latn' / 'train' / '000_00000.parquet')
    meta = german.main(['--hf_dataset', str(repo), '--data_dir', str(tmp_path), '--num_proc', '1', '--val_fraction', '0.05',
                        '--max_tokens', '3000'])
    assert meta['name'] == 'german' and 3000 <= meta['train_tokens'] < 3200 and 'deu_Latn' in meta['source']


def test_replay_bin_holds_exactly_the_windows_a_run_read(tmp_path):
    import torch

    import data
    from prepare import replay
    src = write_jsonl(tmp_path / 'd.jsonl', [{'text': d} for d in DOCS])
    d0 = prepare_text('--name', 'd0', '--input', src, '--data_dir', tmp_path, '--val_fraction', 0.1, '--num_proc', 1)
    # a run's checkpoint record after 20 steps of 8 windows of 16 tokens (what train.py saves)
    mixture = data.Mixture(str(tmp_path), {'d0': 1.0}, 16, 8, 1, 1, seed=3)
    (tmp_path / 'run').mkdir()
    torch.save({'data_state': mixture.state(20), 'config': {'data_dir': str(tmp_path)}},
               tmp_path / 'run' / 'step_000020.pt')
    read = sorted({o for s in range(20) for o in mixture.plan(s)[1]})
    assert len(read) == 160
    meta = replay.main(['--run', str(tmp_path / 'run'), '--src', 'd0', '--name', 'd0_seen'])
    train, _ = read_bin(tmp_path, 'd0_seen', 'train')
    d0_train, _ = read_bin(tmp_path, 'd0', 'train')
    # expected: each run of neighbouring windows with its last target token, an EOT after a run unless it ends on one
    want = []
    for i, o in enumerate(read):
        want += list(d0_train[o:o + 16])
        if i + 1 == len(read) or read[i + 1] != o + 16:
            want.append(d0_train[o + 16])
            if want[-1] != d0['eot_id']:
                want.append(d0['eot_id'])
    assert np.array_equal(train, np.array(want, dtype=train.dtype))
    assert meta['replay_windows'] == 160 and meta['train_tokens'] == len(train)
    assert meta['train_docs'] == int((train == d0['eot_id']).sum()) and meta['tokenizer_hash'] == d0['tokenizer_hash']
    assert np.array_equal(read_bin(tmp_path, 'd0_seen', 'val')[0], read_bin(tmp_path, 'd0', 'val')[0])
    # --max_tokens keeps the windows read first
    assert replay.main(['--run', str(tmp_path / 'run'), '--src', 'd0', '--name', 'd0_first', '--max_tokens', '800'])[
        'replay_windows'] == 50
    first = {o for s in range(6) for o in mixture.plan(s)[1]}.union(mixture.plan(6)[1][:2])  # 50 windows
    kept = data.seen_mask('d0', {**mixture.state(20)['d0'], 'drawn': 50})
    assert set(np.flatnonzero(kept) * 16) == first
    with pytest.raises(SystemExit, match='--overwrite'):
        replay.main(['--run', str(tmp_path / 'run'), '--src', 'd0', '--name', 'd0_seen'])
    with pytest.raises(SystemExit, match="no record of reading 'de'"):
        replay.main(['--run', str(tmp_path / 'run'), '--src', 'de', '--name', 'x'])


# -----------------------------------------------------------------------------
# the demo corpora: cleaning on pages shaped like the packages', and the real build

LIBREOFFICE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Query Design Bar</title>
<script src="help.js"></script></head><body>
<header id="TopLeftHeader"><a class="logo" href="x"><p dir="auto">LibreOffice 7.4 Help</p></a></header>
<aside class="leftside"><div class="index-label">Index</div></aside>
<div id="DisplayArea" itemprop="softwareHelp">
<h1 id="hd_1">Query&nbsp;Design Bar</h1>
<p class="paragraph"><span class="avis">When creating an SQL query, use the icons in the
  <span class="emph">Query Design</span> Bar.</span></p>
<p class="paragraph">Press <span class="switchinline"><span hidden="true" class="MAC">Command</span><span hidden="true">Ctrl</span></span>+Tab.</p>
<div class="icontable"><div class="iconcell"><p class="paragraphintable"><img src="i.svg" alt="Icon"></p></div>
<div class="iconcell"><p class="paragraphintable">Run Query</p></div></div>
<div class="relatedtopics"><p>Related Topics</p><a href="y">Other page</a></div>
</div>
<footer><div id="DEBUG" class="debug"><p>This page is: main0214.xhp</p></div></footer></body></html>"""

HANDBOOK_PAGE = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>6.2. apt-get</title></head><body>
<div id="banner"><a href="http://x"><span class="text">Download the ebook</span></a></div>
<p id="title"><a class="left" href="http://www.debian.org"><img alt="Product Site" src="a.png" /></a></p>
<ul class="docnav top"><li class="previous"><a href="apt.html"><strong>Prev</strong></a></li></ul>
<div class="section"><div class="titlepage"><h2 class="title"><a id="sect.apt-get"></a>6.2. <code class="command">apt-get</code> Commands</h2></div>
<div class="para">
			APT is a vast project, whose original plans
			included a graphical interface.
		</div><pre class="screen"><code class="computeroutput">$ </code><strong class="userinput"><code>apt update</code></strong>
  indented output line</pre></div>
<ul class="docnav"><li class="next"><a href="next.html"><strong>Next</strong>6.3. apt-cache</a></li></ul></body></html>"""


def test_html_text_keeps_the_prose_and_drops_the_site():
    from prepare.demo import LO_DROP, PARTS
    from prepare.extract import html_text
    lo = html_text(LIBREOFFICE_PAGE, PARTS['lo-en']['content'], LO_DROP)
    assert lo.split('\n') == ['Query\xa0Design Bar'.replace('\xa0', ' '),
                              'When creating an SQL query, use the icons in the Query Design Bar.', 'Press Ctrl+Tab.']
    hb = html_text(HANDBOOK_PAGE, PARTS['hb-en']['content'], PARTS['hb-en']['drop'])
    assert hb.split('\n') == ['6.2. apt-get Commands', 'APT is a vast project, whose original plans included a graphical interface.',
                              '$ apt update', '  indented output line']


def test_boilerplate_lines_are_dropped():
    from prepare.extract import drop_boilerplate
    docs = [f"Page {i}\nSome unique sentence number {i}.\nPlease support us!" for i in range(20)]
    kept, n = drop_boilerplate(docs)
    assert n == 1 and all('Please support us' not in d for d in kept) and kept[3] == 'Page 3\nSome unique sentence number 3.'


@pytest.mark.skipif(shutil.which('groff') is None, reason='groff (groff-base) is not installed')
def test_man_page_text(tmp_path):
    import gzip
    from prepare.extract import man_text
    page = tmp_path / 'gruss.1.gz'
    with gzip.open(page, 'wt', encoding='utf-8') as f:
        f.write('.TH GRUSS 1 "2024" "gruss 1.0" "Benutzerbefehle"\n.SH BEZEICHNUNG\ngruss \\- sagt Grüß Gott\n'
                '.SH BESCHREIBUNG\n.B gruss\ngibt einen langen Gruß aus, der über mehrere Eingabezeilen geht und\n'
                'trotzdem als ein Absatz herauskommen soll, ohne Trennstriche.\n')
    text = man_text(str(page))
    assert 'gruss - sagt Grüß Gott' in text
    assert 'gruss gibt einen langen Gruß aus, der über mehrere Eingabezeilen geht und trotzdem als ein Absatz herauskommen soll, ohne Trennstriche.' in text
    assert 'GRUSS(1)' not in text  # running header and footer gone


def test_no_apt_names_the_local_files_route(tmp_path, monkeypatch):
    from prepare import demo
    monkeypatch.setattr(demo.shutil, 'which', lambda tool: None)
    with pytest.raises(RuntimeError, match='python -m prepare.text --name en --input'):
        demo.fetch_packages(['debian-handbook'], str(tmp_path))


def check_card_matches_bins(data_dir, name):
    train, meta = read_bin(data_dir, name, 'train')
    val, _ = read_bin(data_dir, name, 'val')
    assert (meta['train_tokens'], meta['val_tokens']) == (len(train), len(val))
    eot = meta['eot_id']
    assert (meta['train_docs'], meta['val_docs']) == (int((train == eot).sum()), int((val == eot).sum()))
    card = open(os.path.join(data_dir, name, 'CARD.md')).read()
    for split in ('train', 'val'):
        assert f"| {split} | {meta[f'{split}_docs']:,} | {meta[f'{split}_bytes']:,} | {meta[f'{split}_tokens']:,} |" in card
    assert sum(s['docs'] for s in meta['sources']) == meta['train_docs'] + meta['val_docs']
    assert sum(s['bytes'] for s in meta['sources']) == meta['train_bytes'] + meta['val_bytes']
    assert all(s['package'] in card and s['version'] in card and s['licence'] in card for s in meta['sources'])
    return meta


def test_built_demo_corpora_cards_match_bins():
    names = ('en', 'de', 'en2', 'en_docs', 'de_man', 'en_docs_demo1k', 'de_man_demo1k', 'en2_demo1k')
    built = [n for n in names if os.path.exists(os.path.join(default_data_dir(), n, 'meta.json'))]
    if not built:
        pytest.skip('demo corpora not built here (python -m prepare.demo)')
    for name in built:
        check_card_matches_bins(default_data_dir(), name)


@pytest.mark.slow
def test_demo_en_builds_from_debian_packages(tmp_path):
    """The real thing, for the smallest corpus: packages -> text -> demo8k tokenizer -> bins + card (~20 s)."""
    from prepare import demo
    if shutil.which('apt-get') is None or shutil.which('dpkg-deb') is None:
        pytest.skip('needs apt-get and dpkg-deb (Debian/Ubuntu)')
    cached = os.path.join(default_data_dir(), 'demo', 'debs')
    if os.path.isdir(cached):  # reuse packages a demo build already downloaded
        os.makedirs(tmp_path / 'demo')
        os.symlink(cached, tmp_path / 'demo' / 'debs')
    try:
        demo.fetch_packages(['libreoffice-help-en-us', 'debian-handbook'], str(tmp_path / 'demo' / 'debs'))
    except (RuntimeError, subprocess.CalledProcessError) as e:
        pytest.skip(f'Debian packages unavailable here: {e}')
    metas = demo.build(['en'], data_dir=str(tmp_path), num_proc=1)
    meta = check_card_matches_bins(tmp_path, 'en')
    assert metas['en'] == meta and meta['tokenizer'] == 'demo8k' and meta['vocab_size'] == 8192
    assert meta['train_bytes'] > 4e6 and meta['train_tokens'] > 1e6 and meta['val_docs'] > 50
    enc = get_tokenizer('demo8k', tmp_path)
    train = read_bin(tmp_path, 'en', 'train')[0]
    first = split_docs(train[:int(np.flatnonzero(train == meta['eot_id'])[0]) + 1], enc)[0]
    assert len(first) > 200 and '<' not in first[:200]  # prose, not markup
    assert demo.build(['en'], data_dir=str(tmp_path))['en'] == meta  # second run: everything cached, nothing rebuilt
