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
import re
import sys
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


def load_config(defaults, argv, script=None):
    """defaults: dict of the script's config globals. Returns (config dict, the keys a config file or the command
    line set). --help prints the script's keys (usage) and exits."""
    if script and any(a in ('-h', '--help') for a in argv):
        print(usage(script, defaults))
        sys.exit(0)
    config, given = dict(defaults), set()
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
            given.add(key)
        else:
            if not os.path.isfile(arg):
                raise FileNotFoundError(f"config file {arg!r} not found (arguments are config files, then "
                                        f"--key=value)")
            scope = {'__file__': os.path.abspath(arg)}  # a config may exec a shared one beside it (config/base_*.py)
            with open(arg) as f:
                exec(compile(f.read(), arg, 'exec'), scope)
            for key, value in scope.items():
                # a config file may import helpers or use _private names for arithmetic; those are not keys
                if key.startswith('_') or isinstance(value, (types.ModuleType, types.FunctionType, type)):
                    continue
                _check(defaults, key, value, arg)
                config[key] = value
                given.add(key)
    return config, given


def config_keys(scope):
    """The config keys of a script: its module-level names of plain types (not modules, functions, _private
    names or CONSTANTS)."""
    return {k: v for k, v in scope.items()
            if not k.startswith('_') and not k.isupper()
            and isinstance(v, (int, float, bool, str, list, dict, type(None)))}


def train_defaults():
    """train.py's defaults without running it: its source up to the end of the defaults block (the line
    `runtime.clean_errors()`), executed on its own. Other tools (schedules.py's plots, the tests) read configs
    through this, so train.py stays the one place that defines them."""
    scope = {}
    exec(compile(defaults_source(os.path.join(HERE, 'train.py')), 'train.py', 'exec'), scope)
    return config_keys(scope)


def defaults_source(script):
    with open(script) as f:
        src = f.read()
    return src[:src.index('\nruntime.clean_errors()')]


def usage(script, defaults):
    """--help: every key of the script with its default and the comment beside it, under the block comments that
    head each group in the script's defaults."""
    lines = [f"usage: python {os.path.basename(script)} [config.py ...] [--key=value ...]", '']
    for line in defaults_source(script).splitlines():
        m = re.match(r'([a-z]\w*) = (.+?)(?:\s+# ?(.*))?$', line)
        if m and m.group(1) in defaults:
            default = f"--{m.group(1)}={defaults[m.group(1)]!r}"
            lines.append(f"  {default:<34} {m.group(3) or ''}".rstrip())
        elif line.startswith('# ') and not line.startswith(('# ---', '# defaults')):  # a group's heading
            lines.append(line[2:])
    return '\n'.join(lines)


def require(config, at_least_one=(), non_negative=()):
    """Numbers that cannot be what they are: a clear error naming the key, before anything is built."""
    for k in at_least_one:
        if config[k] < 1:
            raise ValueError(f"{k}={config[k]} must be at least 1")
    for k in non_negative:
        if not config[k] >= 0:  # `not >=` also catches nan
            raise ValueError(f"{k}={config[k]} must not be negative")
