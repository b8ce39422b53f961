"""How the files depend on each other (docs/design.md), read from the source with `ast`: every import of the
project's own modules points down to a lower floor or sideways within one, never back up, never in a circle; the
ground floor imports nothing of ours; and no import hides inside a function, except of a heavy library only one
command needs, or one that must wait for something (an environment variable set first): then a comment beside
it says why."""
import ast
import os

import pytest

from synth import ROOT

# bottom to top. A module may import from its own floor or any floor below it.
FLOORS = [
    ('ground', ['runtime', 'configurator', 'schedules', 'prepare']),
    ('prepare', ['prepare.readers', 'prepare.extract', 'prepare.tokenizer', 'prepare.writer', 'prepare.text',
                 'prepare.pile', 'prepare.german', 'prepare.slimpajama', 'prepare.synthetic', 'prepare.demo']),
    ('data', ['data']),
    ('model', ['kernels', 'model']),
    ('train', ['checkpoint', 'train']),
    ('tools', ['sample', 'prepare.replay', 'eval', 'eval.*', 'bench.*']),
]
GROUND = FLOORS[0][1]
SKIP = {'tests', 'config', 'data', '.venv', '.git', '.cache'}  # tests and configs are not the house; data/: bins


def our_modules():
    """{module name: path} of every .py file of the project outside SKIP (a folder's __init__ is the folder)."""
    mods = {}
    for top, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(top, ROOT)
        dirs[:] = [d for d in dirs if not (rel == '.' and (d in SKIP or d.startswith('out')))]
        for f in files:
            if f.endswith('.py'):
                parts = os.path.normpath(os.path.join(rel, f[:-3])).split(os.sep)
                parts = [p for p in parts if p != '.']
                name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
                mods[name] = os.path.join(top, f)
    return mods


MODULES = our_modules()


def floor(name):
    for i, (_, names) in enumerate(FLOORS):
        if name in names or any(n.endswith('.*') and name.startswith(n[:-1]) for n in names):
            return i
    raise AssertionError(f"{name} is on no floor of tests/test_house.py: put it on one (and in docs/design.md)")


def imports(path):
    """[(module imported, line, inside a function)] of one file; `from a import b` counts as a.b when that is a
    module of ours. Imports under `if __name__ == '__main__':` run at the top level, so they count as such."""
    tree = ast.parse(open(path).read(), path)
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0:
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    out.append((full if full in MODULES else child.module, child.lineno, in_function))
            visit(child, inside)
    visit(tree, False)
    return out


def graph():
    """{module: {module of ours it imports}}."""
    return {m: {i for i, _, _ in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}


def test_every_module_has_a_floor():
    for name in MODULES:
        floor(name)
    assert {'runtime', 'train', 'model', 'data', 'checkpoint', 'eval.loss', 'prepare.writer'} <= set(MODULES)


def test_the_ground_floor_imports_nothing_of_ours():
    g = graph()
    for name in GROUND:
        assert not g[name], f"{name} imports {sorted(g[name])}: the ground floor must stand alone"


def test_no_arrow_points_up():
    up = [(m, i) for m, deps in graph().items() for i in deps if floor(i) > floor(m)]
    assert not up, f"imports that point up a floor: {up}"


def test_no_circle():
    g, done, path = graph(), set(), []

    def walk(m):
        if m in path:
            raise AssertionError(f"import circle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done:
            return
        path.append(m)
        for i in sorted(g[m]):
            walk(i)
        path.pop()
        done.add(m)
    for m in sorted(g):
        walk(m)


def explained(lines, i):
    """Whether the import on line i (0-based) says why it is where it is: a comment on it, or on the lines just
    above it that are imports, comments or matplotlib.use (one comment covers a run of imports)."""
    while True:
        if '#' in lines[i]:
            return True
        i -= 1
        if i < 0 or not lines[i].strip().startswith(('import ', 'from ', '#', 'matplotlib.use(')):
            return False


def test_no_import_hides_in_a_function():
    hidden = []
    for name, path in MODULES.items():
        lines = open(path).read().splitlines()
        for mod, line, in_function in imports(path):
            if in_function and not explained(lines, line - 1):
                hidden.append(f"{os.path.relpath(path, ROOT)}:{line} imports {mod}")
    assert not hidden, ("imports inside functions with no comment saying why (move them to the top of the file, "
                        "or say why they wait): " + '; '.join(hidden))


def test_the_checks_see_what_they_forbid(tmp_path, monkeypatch):
    """The parser finds a function-level import, a `from a import b` module and the main guard's imports."""
    f = tmp_path / 'x.py'
    f.write_text("import os\nfrom eval import loss\n\ndef f():\n    import data\n    g = lambda: None\n\n"
                 "if __name__ == '__main__':\n    import runtime\n")
    assert imports(str(f)) == [('os', 1, False), ('eval.loss', 2, False), ('data', 5, True), ('runtime', 9, False)]
    lines = ['def f():', '    import data', '    # optional: a figure', '    import matplotlib', '    import a.b']
    assert [explained(lines, i) for i in (1, 3, 4)] == [False, True, True]
    with pytest.raises(AssertionError, match='no floor'):
        floor('newfile')


def test_train_reads_at_nanogpt_width():
    """train.py is read top to bottom by students: at most 350 lines, at most 15 of them over 100 columns
    (nanoGPT's train.py: 336 lines, 11 over 100)."""
    lines = open(os.path.join(ROOT, 'train.py')).read().splitlines()
    wide = [i + 1 for i, line in enumerate(lines) if len(line) > 100]
    assert len(lines) <= 350, f"train.py has {len(lines)} lines: move setup detail into its module"
    assert len(wide) <= 15, f"train.py has {len(wide)} lines over 100 columns: {wide}"
