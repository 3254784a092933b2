"""Command-line values as the shell passed them: `key=value` overrides rewritten for Hydra's grammar.

Hydra lexes every value: Hangul, spaces, apostrophes, commas, `=` or `;` end in a lexer error, and a
value it can lex may come back as another thing (`text=1e3` -> 1000.0 -> "1000.0", `text=true` ->
"True", `text=${x}` -> an interpolation). For keys whose value is a string (a text, a path, a column or
label name: a `str` in common/schema.py), the value is quoted for Hydra whenever Hydra would not hand
it back unchanged, so the program gets exactly the characters the shell gave. Everything else is
Hydra's to read as before: numbers, booleans, `null`, group choices (`data=files`), `+key=` / `~key`,
sweeps under `-m` and interpolations written into a path on purpose. A whole value in brackets or
braces that Hydra reads as a list or dict stays one (a string key then refuses it in one line that
says how to quote it): `[a,b]` could be either.
"""
import dataclasses
import re
import typing
from functools import cache

from common import schema
from common.errors import UserError
from common.paths import PROJECT_ROOT

# Keys whose value is prose, never a config reference: `${` there is two characters, not an interpolation.
FREE_TEXT_KEYS = {"text", "data.text_prefix", "data.delimiter", "data.label_delimiter"}
QUOTES = ("'", '"')


def literal_overrides(config_name: str, argv: list[str], multirun: bool) -> list[str]:
    return [literal_override(config_name, arg, multirun) for arg in argv]


def literal_override(config_name: str, arg: str, multirun: bool) -> str:
    key, given, value = arg.partition("=")
    if not given or arg.startswith(("-", "~")) or user_quoted(value):
        return arg
    name = key.lstrip("+")
    kind = key_kind(config_name, name)
    if kind == "list":
        lexed = parsed(value) is not NOT_LEXED or not (value.startswith("[") and value.endswith("]"))
        return arg if lexed else f"{key}={quoted_list(value[1:-1])}"
    hydra_value = parsed(value)
    if kind == "other" and hydra_value is NOT_LEXED and value.startswith("{"):
        raise UserError(f"{name}={value}: Hydra's override syntax takes only ASCII names as dictionary keys; "
                        f"write it in a config file, e.g. conf/experiment/NAME.yaml holding '# @package _global_' "
                        f"and {name}: {value}, then pass experiment=NAME")
    if kind == "other" or (kind == "unknown" and hydra_value is not NOT_LEXED):
        return arg
    free_text = name in FREE_TEXT_KEYS
    if value == "null" or (hydra_value == value and not (free_text and "${" in value)):
        return arg
    if isinstance(hydra_value, (list, dict)):  # [a,b] / {a: 1}: Hydra's list or dict, refused for a string
        return arg  # key with a one-line hint on how to quote it as text (common/cli.py)
    if multirun and is_sweep(hydra_value):  # a sweep Hydra can read: -m data.train=a.csv,b.csv
        return arg
    if multirun and "," in value:
        one, each = hydra_quoted(value), ",".join(hydra_quoted(v) for v in value.split(","))
        raise UserError(f"{name}={value}: under -m a comma separates the values of a sweep; write "
                        f"{name}=\"{one}\" for one value holding a comma, or {name}=\"{each}\" to sweep")
    return f"{key}={hydra_quoted(omegaconf_literal(value) if free_text else value)}"


def override_meaning(config_name: str, override: str) -> tuple[str, str]:
    """(key, what Hydra reads the value as): the same for an override as typed (`data.text_column=문장`,
    `optim.lr=5e-5`) and as Hydra records it in a job's overrides.yaml (`data.text_column='문장'`,
    `optim.lr=5e-05`)."""
    key, _, value = literal_override(config_name, override, multirun=False).partition("=")
    meaning = parsed(value)
    return key, repr(value if meaning is NOT_LEXED else meaning)


def user_quoted(value: str) -> bool:
    """`text='...'` or `text="..."`: Hydra's own quoting, which the README's older commands use."""
    return len(value) >= 2 and value[0] in QUOTES and value[-1] == value[0] and isinstance(parsed(value), str)


def quoted_list(items: str) -> str:
    """`[공포,놀람]` -> `['공포','놀람']`; items Hydra can read already (numbers, quoted strings) as they are."""
    elements = [item.strip() for item in items.split(",")] if items.strip() else []
    return "[" + ",".join(e if user_quoted(e) or parsed(e) == e else hydra_quoted(e) for e in elements) + "]"


def hydra_quoted(value: str) -> str:
    """A single-quoted Hydra string that Hydra reads back as `value`: inside quotes a backslash only
    escapes a quote or the backslashes just before one (or before the closing quote)."""
    inner = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    inner = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, inner)
    return f"'{inner}'"


def omegaconf_literal(value: str) -> str:
    """`${` escaped for OmegaConf (`\\${`), with the backslashes before it doubled, so it stays text."""
    return re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", value)


class _NotLexed:
    def __repr__(self):
        return "NOT_LEXED"


NOT_LEXED = _NotLexed()


def parsed(value: str):
    """What Hydra makes of `value` (a str, number, bool, None, list, dict or sweep), or NOT_LEXED."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(f"key={value}").value()
    except Exception:  # Hydra's lexer and parser errors share no base class but Exception
        return NOT_LEXED


def is_sweep(value) -> bool:
    from hydra.core.override_parser.types import Sweep

    return isinstance(value, Sweep)


def key_kind(config_name: str, key: str) -> str:
    """'text' for a string key (schema type str or Optional[str]; without a schema, a YAML default
    that is a string or ???), 'list' for a list of strings, 'other' for any other type, 'unknown'
    for a key found nowhere (`+new.key`, hydra.launcher.*): its value is text only when Hydra cannot
    read it at all."""
    kind = schema_kind(config_name, key)
    return kind if kind is not None else yaml_kind(config_name, key)


def schema_kind(config_name: str, key: str) -> str | None:
    parts, entry = key.split("."), schema.ENTRIES.get(config_name)
    entry_fields = {f.name: f.type for f in dataclasses.fields(entry)} if entry else {}
    if len(parts) > 1 and parts[0] in schema.GROUPS and entry_fields.get(parts[0], typing.Any) is typing.Any:
        node, parts = schema.GROUPS[parts[0]], parts[1:]  # a group field is Any: the group's schema types it
    else:
        node = entry
    for part in parts:
        fields = {f.name: f.type for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return None
        node = fields[part]
    return type_kind(node)


def type_kind(annotation) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        annotation = args[0]  # Optional[X]
    if annotation is str:
        return "text"
    if typing.get_origin(annotation) is list and typing.get_args(annotation) == (str,):
        return "list"
    return "other"


def yaml_kind(config_name: str, key: str) -> str:
    from omegaconf import OmegaConf

    default = yaml_defaults(config_name)
    node = OmegaConf.to_container(default, resolve=False) if default is not None else None
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "unknown"
        node = node[part]
    return "text" if isinstance(node, str) else "other"  # ??? (missing) reads as the string '???'


@cache
def yaml_defaults(config_name: str):
    from omegaconf import OmegaConf

    path = PROJECT_ROOT / "conf" / f"{config_name}.yaml"
    return OmegaConf.load(path) if path.is_file() else None
