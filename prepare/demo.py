"""
The demo corpora, built offline from Debian packages, and the demo tokenizer:

    en      English software documentation: LibreOffice help (en-US) + the Debian Administrator's Handbook (en-US)
    en_docs en + the Debian Reference and the PostgreSQL, git and SQLite manuals: five times en      (make demo's D0)
    de_man  the German man pages: German technical text that translates none of en   (strong shift, make demo's D1)
    de      the German translations of en's sources + the German man pages     (strong shift, much of it parallel)
    en2     the Python 3.11 documentation                                     (weak shift: English of another kind)
    demo8k  a byte-level BPE of 8192 tokens trained on en's train split only: in continual pre-training the
            tokenizer is fixed by D0, so German tokenizes worse, as in the paper
    demo1k  a byte-level BPE of 1024 tokens trained on en_docs' train split only (make demo's D0): the tokenizer of
            the small models of make demo and make sweep, whose LM head must not outweigh their blocks

    python -m prepare.demo                      # all of the above with demo8k, into DATA_DIR (default: data/)
    python -m prepare.demo --tokenizer demo1k --corpora en_docs de_man en2   # as en_docs_demo1k, ... (make data)
    python -m prepare.demo --tokenizer gpt2     # the same corpora with GPT-2's tokenizer, as en_gpt2, ...

Every step is cached and skipped when done: packages (DATA_DIR/demo/debs), extracted text, one file per package
part (DATA_DIR/demo/text/<part>.jsonl), the tokenizer (DATA_DIR/tokenizers/demo8k.tiktoken) and the bins.
Needs apt-get and dpkg-deb (Debian/Ubuntu); a fresh machine needs one `apt-get update` (done here when root).
"""
import argparse
import fnmatch
import glob
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time

from tqdm import tqdm

import runtime
from prepare import default_data_dir
from prepare.extract import drop_boilerplate, html_text, man_text, normalise
from prepare.readers import read_documents
from prepare.text import cli, report
from prepare.tokenizer import get_tokenizer, tokenizer_hash, train_bpe
from prepare.writer import is_complete, is_val, write_bins

VAL_FRACTION = 0.05  # small corpora: 5% gives val splits of ~50-150k tokens
MIN_CHARS = 200  # a page shorter than this after cleaning is a stub (a redirect, an index, a lone heading)
DEMO_TOKENIZER = 'demo8k'  # the corpora built with it keep their plain names (en_docs, ...); others get a suffix
# the BPEs trained here: name -> (vocab size counting <|endoftext|>, the corpus whose train split it learns from)
DEMO_TOKENIZERS = {'demo8k': (8192, 'en'), 'demo1k': (1024, 'en_docs')}

LO = 'usr/share/libreoffice/help'
HB = 'usr/share/doc/debian-handbook/html'
LO_DROP = ('icontable', 'MAC', 'relatedtopics')  # icon captions, the hidden macOS key names, link lists
# Where each package keeps its text and how to read it. content: the element that holds a page's own text;
# drop: classes/ids of the parts of it that are not prose; exclude: pages that are indexes, not text.
PARTS = {
    'lo-en': dict(package='libreoffice-help-en-us', licence='MPL-2.0', files=f'{LO}/en-US/text/**/*.html',
                  kind='html', content=('div', 'id', 'DisplayArea'), drop=LO_DROP),
    'lo-de': dict(package='libreoffice-help-de', licence='MPL-2.0', files=f'{LO}/de/text/**/*.html',
                  kind='html', content=('div', 'id', 'DisplayArea'), drop=LO_DROP),
    'hb-en': dict(package='debian-handbook', licence='GPL-2.0+ or CC-BY-SA-3.0', files=f'{HB}/en-US/*.html',
                  kind='html', content=None, drop=('banner', 'docnav')),
    'hb-de': dict(package='debian-handbook', licence='GPL-2.0+ or CC-BY-SA-3.0', files=f'{HB}/de-DE/*.html',
                  kind='html', content=None, drop=('banner', 'docnav')),
    'man-de': dict(package='manpages-de', licence='GPL-3+', files='usr/share/man/de/man*/*', kind='man',
                   exclude=('systemd.directives.*', 'systemd.index.*')),
    'dr-en': dict(package='debian-reference-en', licence='GPL-2+', files='usr/share/debian-reference/*.en.html',
                  kind='html', content=None, drop=('navheader', 'navfooter', 'toc')),
    'pg-en': dict(package='postgresql-doc-15', licence='PostgreSQL', files='usr/share/doc/postgresql-doc-15/html/*.html',
                  kind='html', content=None, drop=('navheader', 'navfooter', 'toc')),
    'git-en': dict(package='git-doc', licence='GPL-2', files='usr/share/doc/git-doc/**/*.html', kind='html',
                   content=None, drop=('toc', 'footer')),
    'sqlite-en': dict(package='sqlite3-doc', licence='public-domain', files='usr/share/doc/sqlite3/**/*.html',
                      kind='html', content=None, drop=('searchmenu', 'fancy_toc', 'menu', 'toc_sub')),
    'py-en': dict(package='python3.11-doc', licence='PSF-2.0', files='usr/share/doc/python3.11/html/**/*.html',
                  kind='html', content=('div', 'class', 'body'), drop=('headerlink',),
                  exclude=('genindex*', 'py-modindex.html', 'contents.html', 'search.html', 'download.html')),
}
CORPORA = {
    'en': ("English software documentation: LibreOffice help (en-US) and the Debian Administrator's Handbook (en-US), "
           "from Debian 12 packages", ['lo-en', 'hb-en']),
    'de': ("German software documentation: LibreOffice help (de) and the Debian Administrator's Handbook (de-DE), "
           "translations of en's sources, plus the German man pages (manpages-de), from Debian 12 packages",
           ['lo-de', 'hb-de', 'man-de']),
    'de_man': ("German man pages (manpages-de), from Debian 12 packages: German technical text, none of it a "
               "translation of en's sources", ['man-de']),
    'en_docs': ("English software documentation, six manuals: LibreOffice help (en-US), the Debian Administrator's "
                "Handbook (en-US) and the Debian Reference, PostgreSQL 15, git and SQLite, from Debian 12 packages",
                ['lo-en', 'hb-en', 'dr-en', 'pg-en', 'git-en', 'sqlite-en']),
    'en2': ("English technical reference of another kind: the Python 3.11 documentation (python3.11-doc), "
            "from Debian 12 packages", ['py-en']),
}
LOCAL_TEXT = ("Use your own text instead: python -m prepare.text --name en --input <english .txt/.jsonl files> "
              "--tokenizer gpt2 (and the same for de, en2), or train a tokenizer on them first: "
              "python -m prepare.tokenizer --name demo8k --input <files>")
NO_APT = "the demo corpora come from Debian packages, and this machine has no {what}. " + LOCAL_TEXT


# -----------------------------------------------------------------------------
# packages

def fetch_packages(packages, cache):
    """apt-get download into `cache`, skipping packages already there. Returns {package: .deb path}."""
    for tool, what in (('apt-get', 'apt-get'), ('dpkg-deb', 'dpkg-deb')):
        if shutil.which(tool) is None:
            raise RuntimeError(NO_APT.format(what=what))
    os.makedirs(cache, exist_ok=True)
    debs = {p: (glob.glob(os.path.join(cache, f'{p}_*.deb')) or [None])[0] for p in packages}
    missing = [p for p, d in debs.items() if d is None]
    if missing:
        print(f"downloading {', '.join(missing)}")
        r = _apt_download(missing, cache)
        if r.returncode != 0 and os.geteuid() == 0:  # lists missing or stale (the archive moved on): refresh once
            print("apt's package lists are missing or stale: running apt-get update")
            subprocess.run(['apt-get', 'update', '-q'], stdout=subprocess.DEVNULL)  # a failing extra source is fine
            r = _apt_download(missing, cache)
        if r.returncode != 0:
            raise RuntimeError(f"apt-get download {' '.join(missing)} failed: {r.stderr.strip()[-400:]}. "
                               f"If the package lists are missing or stale, run `sudo apt-get update` once. " + LOCAL_TEXT)
        debs = {p: glob.glob(os.path.join(cache, f'{p}_*.deb'))[0] for p in packages}
    return debs


def _apt_download(packages, cache):
    return subprocess.run(['apt-get', 'download', *packages], cwd=cache, capture_output=True, text=True)


def deb_version(deb):
    return subprocess.run(['dpkg-deb', '-f', deb, 'Version'], capture_output=True, text=True, check=True).stdout.strip()


# -----------------------------------------------------------------------------
# text

def _page(args):
    path, part = args
    if part['kind'] == 'man':
        return normalise(man_text(path))
    with open(path, encoding='utf-8', errors='replace') as f:
        return normalise(html_text(f.read(), part['content'], part['drop']))


def part_documents(part, root, pool):
    """One document per page of a package part: markup stripped, boilerplate lines dropped, stubs and exact
    duplicates removed."""
    files = sorted(f for f in glob.glob(os.path.join(root, part['files']), recursive=True) if os.path.isfile(f)
                   and not any(fnmatch.fnmatch(os.path.basename(f), x) for x in part.get('exclude', ())))
    if not files:
        raise RuntimeError(f"{part['package']}: no files match {part['files']}; has the package layout changed?")
    pages = list(tqdm(pool.imap(_page, [(f, part) for f in files], chunksize=16), total=len(files),
                      desc=f"{part['package']} ({os.path.dirname(part['files'])[:40]})", unit='page'))
    docs, _ = drop_boilerplate(pages)
    out, seen = [], set()
    for doc in docs:
        doc = normalise(doc)
        if len(doc) >= MIN_CHARS and doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def build_text(key, debs, text_dir):
    """DATA_DIR/demo/text/<part>.jsonl: {"text", "source"} per document of one package part, and beside it the
    part's package, version, licence and size. Cached: a part is extracted once, whichever corpora share it."""
    path = os.path.join(text_dir, f'{key}.jsonl')
    if os.path.exists(path):
        with open(path + '.source.json') as f:
            return path, json.load(f)
    os.makedirs(text_dir, exist_ok=True)
    part = PARTS[key]
    with tempfile.TemporaryDirectory(dir=text_dir) as tmp, multiprocessing.get_context('spawn').Pool() as pool:
        root = os.path.join(tmp, part['package'])
        subprocess.run(['dpkg-deb', '-x', debs[part['package']], root], check=True)
        docs = part_documents(part, root, pool)
    with open(path + '.tmp', 'w') as f:
        for doc in docs:
            f.write(json.dumps({'text': doc, 'source': key}, ensure_ascii=False) + '\n')
    source = dict(group=key, package=part['package'], version=deb_version(debs[part['package']]),
                  licence=part['licence'], docs=len(docs), bytes=sum(len(d.encode()) for d in docs))
    with open(path + '.source.json', 'w') as f:
        json.dump(source, f, indent=1)
    runtime.durable_replace(path + '.tmp', path)  # last: the jsonl exists only when complete
    return path, source


# -----------------------------------------------------------------------------

def build(corpora=tuple(CORPORA), tokenizer=DEMO_TOKENIZER, data_dir=None, num_proc=None):
    data_dir = data_dir or default_data_dir()
    t0 = time.time()
    tok_path = os.path.join(data_dir, 'tokenizers', f'{tokenizer}.tiktoken')
    train_tok = tokenizer in DEMO_TOKENIZERS and not os.path.exists(tok_path)
    vocab, learn_from = DEMO_TOKENIZERS.get(tokenizer, (0, None))
    parts = sorted({k for c in set(corpora) | ({learn_from} if train_tok else set()) for k in CORPORA[c][1]})
    debs = fetch_packages(sorted({PARTS[k]['package'] for k in parts}), os.path.join(data_dir, 'demo', 'debs'))
    texts = {k: build_text(k, debs, os.path.join(data_dir, 'demo', 'text')) for k in parts}  # the tokenizer's too
    if train_tok:
        print(f"training the {tokenizer} tokenizer ({vocab} tokens) on {learn_from}'s train split")
        files = [texts[k][0] for k in CORPORA[learn_from][1]]
        train_text = (r['text'] for r in read_documents(files) if not is_val(r['text'].encode(), VAL_FRACTION))
        train_bpe(train_text, vocab, tok_path)
    enc_hash = tokenizer_hash(get_tokenizer(tokenizer, data_dir))
    metas = {}
    for corpus in corpora:
        files, sources = [texts[k][0] for k in CORPORA[corpus][1]], [texts[k][1] for k in CORPORA[corpus][1]]
        name = corpus if tokenizer == DEMO_TOKENIZER else f"{corpus}_{os.path.basename(tokenizer).removesuffix('.tiktoken')}"
        meta_path = os.path.join(data_dir, name, 'meta.json')
        if is_complete(os.path.join(data_dir, name)):
            with open(meta_path) as f:
                meta = json.load(f)
            if meta['tokenizer_hash'] == enc_hash:
                print(f"{name}: already built")
                metas[name] = meta
                continue
            print(f"{name}: built with another {tokenizer}; rebuilding")
        metas[name] = write_bins(read_documents(files), name, tokenizer=tokenizer, data_dir=data_dir,
                                 group_field='source', val_fraction=VAL_FRACTION, num_proc=num_proc, overwrite=True,
                                 source=CORPORA[corpus][0], extra_meta={'sources': sources})
    for meta in metas.values():
        report(meta, data_dir)
    print(f"demo corpora ready in {time.time() - t0:.0f}s")
    return metas


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--corpora', nargs='+', default=list(CORPORA), choices=list(CORPORA))
    p.add_argument('--tokenizer', default=DEMO_TOKENIZER,
                   help=f'{", ".join(DEMO_TOKENIZERS)} (trained here) or any get_tokenizer name')
    p.add_argument('--data_dir', default=None)
    p.add_argument('--num_proc', type=int, default=None)
    args = p.parse_args(argv)
    return cli(lambda: build(args.corpora, args.tokenizer, args.data_dir, args.num_proc))


if __name__ == '__main__':
    main()
