"""
nanoGPT's configuration convention, with checks:

    python train.py config/cpt_en_de.py --learning_rate=3e-4 --data="{'de': 0.75, 'en': 0.25}"

Config files are plain Python that assign module-level names; `--key=value` overrides come after, parsed as
Python literals (numbers, strings, bools, lists, dicts), or taken as a string when they are not one. Every key
must already have a default, and a value must have its default's type (an int is accepted where a float is
expected; a key whose default is None takes anything), so a typo stops the run instead of being ignored.
"""
import ast
import os
import sys
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def _check(defaults, key, value, source):
    if key not in defaults:
        valid = ', '.join(sorted(k for k in defaults))
        raise ValueError(f"unknown config key {key!r} (from {source}); valid keys: {valid}")
    want = defaults[key]
    ok = (want is None or type(value) is type(want)
          or (type(want) is float and type(value) is int))
    if not ok:
        raise ValueError(f"config key {key!r} (from {source}) must be a {type(want).__name__} like its default "
                         f"{want!r}, got {type(value).__name__} {value!r}")


def load_config(defaults, argv):
    """defaults: dict of the script's config globals. Returns (config dict, set of keys the user set)."""
    config, explicit = dict(defaults), set()
    for arg in argv:
        if arg.startswith('--'):
            key, eq, text = arg[2:].partition('=')
            if not eq:
                raise ValueError(f"argument {arg!r} must look like --key=value")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text  # a bare string: --init_from=out/en/step_000450.pt
            _check(defaults, key, value, arg)
            config[key] = value
            explicit.add(key)
        else:
            if not os.path.isfile(arg):
                raise FileNotFoundError(f"config file {arg!r} not found (arguments are a config file, then --key=value)")
            scope = {'__file__': os.path.abspath(arg)}  # a config may exec a shared one beside it (config/base_*.py)
            with open(arg) as f:
                exec(compile(f.read(), arg, 'exec'), scope)
            for key, value in scope.items():
                # a config file may import helpers or use _private names for arithmetic; those are not keys
                if key.startswith('_') or isinstance(value, (types.ModuleType, types.FunctionType, type)):
                    continue
                _check(defaults, key, value, arg)
                config[key] = value
                explicit.add(key)
    return config, explicit


def config_keys(scope):
    """The config keys of a script: its module-level names of plain types (not modules, functions, _private
    names or CONSTANTS)."""
    return {k: v for k, v in scope.items()
            if not k.startswith('_') and not k.isupper()
            and isinstance(v, (int, float, bool, str, list, dict, type(None)))}


def train_defaults():
    """train.py's defaults without running it: its source up to the end of the defaults block (the line
    `clean_errors()`), executed on its own. Other tools (schedules.py's plots, the tests) read configs through
    this, so train.py stays the one place that defines them."""
    with open(os.path.join(HERE, 'train.py')) as f:
        src = f.read()
    scope = {}
    exec(compile(src[:src.index('\nclean_errors()')], 'train.py', 'exec'), scope)
    return config_keys(scope)


def clean_errors():
    """Make bad input stop with one line, not a traceback: a ValueError or FileNotFoundError raised by this
    project's own code (its checks) prints just its message. Errors from inside torch or numpy, which mean a
    bug rather than bad input, keep their full traceback."""
    def hook(kind, err, tb):
        frames = traceback.extract_tb(tb)
        where = os.path.abspath(frames[-1].filename) if frames else ''
        ours = where.startswith(HERE + os.sep) and 'site-packages' not in where  # not .venv's libraries
        if issubclass(kind, (ValueError, FileNotFoundError)) and ours:
            # no sys.exit here: torch.distributed wraps this hook to prefix each line with the rank, and needs it
            # to return; Python then exits with status 1
            print(f"error: {err}", file=sys.stderr)
        else:
            sys.__excepthook__(kind, err, tb)
    sys.excepthook = hook
