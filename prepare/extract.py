"""
Plain text from documentation markup, for the demo corpora: HTML pages and man pages in, paragraphs out.

The aim is prose a language model should learn from: the visible text of a page's content area, one paragraph
per line, code blocks kept with their indentation, and nothing of the site around it (navigation, headers,
footers, scripts). What a whole collection repeats on many pages (boilerplate) is removed afterwards.
"""
import collections
import gzip
import re
import shutil
import subprocess
from html.parser import HTMLParser

VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr'}
BLOCK = {'p', 'div', 'br', 'li', 'dt', 'dd', 'tr', 'pre', 'table', 'ul', 'ol', 'dl', 'blockquote', 'section',
         'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'td', 'th', 'caption', 'figure', 'figcaption', 'article', 'hr', 'title'}
NEVER = {'script', 'style', 'nav', 'header', 'footer', 'aside', 'noscript', 'head', 'button', 'form', 'svg'}


class _PageText(HTMLParser):
    """Visible text inside the first element matching `content` (tag, attribute, value), minus the subtrees
    matching `drop` (class or id values). Block tags end lines; whitespace collapses except inside <pre>."""

    def __init__(self, content, drop):
        super().__init__(convert_charrefs=True)
        self.content, self.drop = content, drop
        self.stack = []  # one (tag, opens_content, skipped) per open non-void element
        self.inside = content is None  # no content element given: the whole page (minus NEVER) counts
        self.done = False
        self.pre = 0
        self.lines, self.line = [], []

    def _matches(self, tag, attrs, spec):
        return tag == spec[0] and spec[2] in (attrs.get(spec[1]) or '').split()

    def newline(self):
        text = ''.join(self.line)
        text = text.rstrip() if self.pre else ' '.join(text.split())
        if text.strip():
            self.lines.append(text)
        self.line = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        skip = tag in NEVER or any(v in self.drop for v in (attrs.get('class') or '').split() + [attrs.get('id')])
        opens = not self.inside and not self.done and self.content and self._matches(tag, attrs, self.content)
        if opens:
            self.inside = True
        if tag in BLOCK:
            self.newline()
        if tag == 'pre':
            self.pre += 1
        if tag not in VOID:
            self.stack.append((tag, opens, skip))

    def handle_startendtag(self, tag, attrs):
        if tag in BLOCK:
            self.newline()

    def handle_endtag(self, tag):
        if tag in VOID or not any(t == tag for t, _, _ in self.stack):
            return  # a stray end tag: ignore rather than unwind the stack
        while self.stack:  # pop up to the matching start tag, closing anything left open inside it
            t, opens, _ = self.stack.pop()
            if t == 'pre':
                self.newline()
                self.pre -= 1
            if opens:
                self.inside, self.done = False, True
            if t == tag:
                break
        if tag in BLOCK:
            self.newline()

    def handle_data(self, data):
        if not self.inside or any(skip for _, _, skip in self.stack):
            return
        if self.pre:
            first, *rest = data.split('\n')
            self.line.append(first)
            for part in rest:
                self.newline()
                self.line.append(part)
        else:
            self.line.append(data)


def html_text(html, content=None, drop=()):
    """The text of an HTML page: one paragraph (or code line) per line. `content` = (tag, attr, value) of the
    element holding the page's own text, e.g. ('div', 'id', 'DisplayArea'); `drop` = classes/ids to leave out."""
    parser = _PageText(content, set(drop))
    parser.feed(html)
    parser.close()
    parser.newline()
    return '\n'.join(parser.lines)


def man_text(path):
    """A man page (roff source, may be .gz) rendered by groff as plain UTF-8, a paragraph per line: a very
    long line length stops groff from wrapping and hyphenating, and -c/-b/-o/-u drop the terminal bold and
    underline codes. The running header and footer lines go."""
    if shutil.which('groff') is None:
        raise RuntimeError("groff is needed to read man pages: apt-get install groff-base")
    with (gzip.open if path.endswith('.gz') else open)(path, 'rb') as f:
        src = f.read()
    out = subprocess.run(['groff', '-k', '-Tutf8', '-mandoc', '-P-cbou', '-rLL=4000n', '-rHY=0'],
                         input=src, capture_output=True).stdout.decode('utf-8', errors='replace')
    lines = [line.strip() for line in out.split('\n') if line.strip()]
    return '\n'.join(lines[1:-1])


def drop_boilerplate(docs, min_docs=5, min_share=0.01):
    """Removes lines that appear in many documents of a collection (navigation words, licence notes,
    'Related Topics' and the like): a line found in at least `min_docs` documents and in more than
    `min_share` of them is boilerplate. Then drops documents that became empty. docs: list of strings."""
    seen = collections.Counter()
    for doc in docs:
        seen.update(set(doc.split('\n')))
    limit = max(min_docs, min_share * len(docs))
    boiler = {line for line, n in seen.items() if n >= limit}
    kept = ['\n'.join(line for line in doc.split('\n') if line not in boiler) for doc in docs]
    return kept, len(boiler)


def normalise(text):
    """NBSPs and other odd spaces to plain spaces, at most one blank line, no trailing spaces."""
    text = re.sub(r'[\u00a0\u2000-\u200b\u202f\u205f\u3000]', ' ', text)
    return re.sub(r'\n{3,}', '\n\n', text).strip()
