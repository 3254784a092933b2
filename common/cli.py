"""Command-line edge: values as the shell passed them (common/overrides.py), and config mistakes
(unknown key, missing group option, bad syntax, a value of the wrong type or not among a key's
choices) in one line."""
import argparse
import re
import sys

import common.config  # noqa: F401  (the schema and resolvers every composed config needs)
from common.errors import EXIT_USER_ERROR, UserError
from common.overrides import literal_overrides
from common.paths import PROJECT_ROOT


def check_overrides(config_name: str, argv=None, checks=None):
    """Composes the config once before Hydra runs, because Hydra reports these mistakes over
    several lines with exit code 1, then runs the entry script's `checks(cfg)` (common/checks.py)
    on it: a refused value ends here, before Hydra creates the run directory. For a multirun
    (`-m a=1,2`) each value of each swept key is composed once, so a type or choice mistake stops
    the sweep before its first job; the range checks are left to each job's main."""
    from_shell = argv is None
    argv = sys.argv[1:] if from_shell else argv
    multirun = [a for a in argv if a in ("-m", "--multirun")]
    try:
        argv = literal_overrides(config_name, argv, multirun=bool(multirun))
    except UserError as e:
        fail(str(e))
    if from_shell:  # Hydra reads sys.argv after us: it gets the values quoted for its grammar
        sys.argv[1:] = argv
    if any(a.startswith("-") for a in argv if a not in multirun):  # --cfg, --help, ...: Hydra's own business
        return
    if multirun:
        for overrides in sweep_samples([a for a in argv if a not in multirun]):
            composed(config_name, overrides)
        return
    cfg = composed(config_name, argv)
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationToMissingValueError

    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
    except InterpolationToMissingValueError as e:  # e.g. model.name: ${model.path} with no path given
        missing = [str(e).split("Missing mandatory value: ")[-1].splitlines()[0]]
    if missing:
        fail(f"{missing[0]} has no value: pass {missing[0]}=...")
    refuse_loose_booleans(cfg, argv)
    if checks is not None:
        try:
            checks(cfg)
        except UserError as e:
            fail(str(e))


def refuse_loose_booleans(cfg, argv):
    """OmegaConf reads yes/no/on/off/1/0 as booleans; on the command line `pack_weights=yes` is more
    likely a misunderstanding than a choice, so only true/false are taken there."""
    from omegaconf import OmegaConf

    for arg in argv:
        key, given, value = arg.partition("=")
        if given and value.lower() in ("yes", "no", "on", "off", "y", "n", "1", "0"):
            if isinstance(OmegaConf.select(cfg, key.lstrip("+"), default=None), bool):
                fail(f"{key.lstrip('+')}={value!r}: expected true or false")


def composed(config_name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
            return compose(config_name, overrides=overrides)
    except Exception as e:  # Hydra raises several exception types; all mean "this config is wrong"
        fail(describe_composition_error(e))


def sweep_samples(argv: list[str]) -> list[list[str]]:
    """The sweep's fixed overrides with one value of one swept key at a time: every value is composed
    once (a sum over the keys, not the product of the grid). Intervals (Optuna) cannot be listed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(argv)
    except Exception as e:  # a syntax error: Hydra's message, on one line
        fail(describe_composition_error(e))
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    samples = [[*fixed, f"{o.get_key_element()}={value}"] for o in overrides if o.is_sweep_override()
               and not o.is_interval_sweep() for value in o.sweep_string_iterator()]
    return samples or [fixed]


TYPE_NAMES = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def describe_composition_error(e: Exception) -> str:
    """A value the schema (common/schema.py) refuses, as `key=value is not ...`; anything else as
    Hydra's message without its indented detail and config search path."""
    from omegaconf.errors import ValidationError

    cause = e
    while cause is not None and not (isinstance(cause, ValidationError) and getattr(cause, "full_key", None)):
        cause = cause.__cause__
    if cause is not None:
        return refused_value(cause.full_key, cause.value, cause.msg.splitlines()[0])
    message = str(e).split("Config search path")[0]  # the search path dump is noise to a user
    lines = [line.strip() for line in message.splitlines() if line.strip() and not line.startswith(" ")]
    return "; ".join(lines) or type(e).__name__


def refused_value(key: str, value, reason: str) -> str:
    if choices := re.match(r"Invalid value '.*', expected one of \[(.*)\]", reason):
        return f"{key}={value!r} is not one of {choices.group(1)}"
    if kind := re.search(r"could not be converted to (\w+)", reason):
        return f"{key}={value!r}: expected {TYPE_NAMES.get(kind.group(1), kind.group(1))}"
    if "is not a valid bool" in reason:
        return f"{key}={value!r}: expected true or false"
    if "to string" in reason:  # a list or mapping given for a string
        return f"{key}={value!r}: expected a string (for brackets or braces as text, quote them: {key}=\"'...'\")"
    if "is not a ListConfig" in reason:
        return f"{key}={value!r}: expected a list, e.g. [a,b]"
    return f"{key}: {reason}"


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse for the research commands: a mistake is one line ending in the usage, exit 2 (UserError),
    instead of argparse's usage line and message on two."""

    def __init__(self, *args, usage_line: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.usage_line = usage_line

    def error(self, message):
        raise UserError(f"{message} (usage: {self.usage_line})")
