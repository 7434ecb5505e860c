"""Options as data: each component option is one dataclass field whose metadata says the rest.

A config dataclass (IngestConfig, BalanceConfig, TransformConfig, TrainConfig) declares each
option once with ``option(default, help=..., flag=...)``; from those fields come

- the component spec's exec-property types (``exec_types``),
- the exec properties a component records (``to_exec_properties``) and the config its executor
  reads back (``from_exec_properties``: a key an older execution did not record gets today's
  default, so existing ML Metadata stores still read),
- the command-line flags (``add_arguments``) and the config they give (``from_args``),
- the KFP runtime parameters (``runtime_parameters``: fields marked ``runtime=NAME``).

Pure: no TensorFlow/TFX imports (argparse only). Written here because TFX has no declarative
options layer of its own (its ComponentSpec PARAMETERS carry types, not flags, help or codecs).
"""
import argparse
import dataclasses
import os
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

from components.errors import ConfigError

_METADATA_KEY = 'cxr_option'
INT64_LIMIT = 2**63  # exec properties are ML Metadata int64 values


@dataclasses.dataclass(frozen=True)
class Option:
  """What a config field's metadata says about the option.

  Attributes:
    help: the --help line (argparse's %(default)s works) and the docs' description.
    flag: the command-line flag ('--max-pixels'); '' = Python and exec property only.
    kind: the exec property's type, str, int or float (TFX ExecutionParameter types; int for
      a bool).
    encode: value -> exec property (default: bool -> 0/1, else the value itself).
    decode: exec property -> value (default: ``kind`` for numbers, bool() of it for a bool).
    parse: command-line text -> value (argparse ``type``; default ``kind`` for numbers).
    show: value -> its command-line text, for the --help default (default: str).
    choices: the values the option accepts (besides its default).
    minimum: an int option's smallest value.
    metavar: the flag's argument name in --help.
    repeat: the flag may be given several times, each adding one value (a tuple field).
    path: a local path or URI: the command line makes local paths absolute.
    runtime: the KFP pipeline parameter name when the option may be a RuntimeParameter.
    exec_property: recorded as an exec property (False: used where the config is built only).
  """
  help: str
  flag: str = ''
  kind: type = str
  encode: Optional[Callable[[Any], Any]] = None
  decode: Optional[Callable[[Any], Any]] = None
  parse: Optional[Callable[[str], Any]] = None
  show: Optional[Callable[[Any], str]] = None
  choices: Tuple[Any, ...] = ()
  minimum: Optional[int] = None
  metavar: Optional[str] = None
  repeat: bool = False
  path: bool = False
  runtime: str = ''
  exec_property: bool = True


def option(default: Any = dataclasses.MISSING, *, help: str, **metadata) -> Any:  # noqa: A002
  """A dataclass field declaring one option (``metadata``: the Option attributes)."""
  return dataclasses.field(default=default,
                           metadata={_METADATA_KEY: Option(help=help, **metadata)})


def options_of(config_class) -> Iterator[Tuple[dataclasses.Field, Option]]:
  """(field, Option) of every option field of ``config_class``, in declaration order."""
  for field in dataclasses.fields(config_class):
    opt = field.metadata.get(_METADATA_KEY)
    if opt is not None:
      yield field, opt


def option_for(config_class, name: str) -> Option:
  return dict((f.name, o) for f, o in options_of(config_class))[name]


def key(config_class, name: str) -> str:
  """The exec property key of a field (its name; KeyError if it is not an option)."""
  option_for(config_class, name)
  return name


def where(config_class, name: str) -> str:
  """How a user sets a field, for error messages: 'option --max-pixels' or 'IngestConfig.x'."""
  flag = option_for(config_class, name).flag
  return f'option {flag}' if flag else f'{config_class.__name__}.{name}'


def validate(config) -> None:
  """The checks every option's metadata implies: choices, bools, ints and their minimum. Each
  error names the field, the value and the flag (or field) that sets it."""
  for f, o in options_of(type(config)):
    value = getattr(config, f.name)
    if o.choices and value not in o.choices and value != f.default:
      raise ConfigError(f'{f.name} must be one of {o.choices}, got {value!r} '
                        f'({where(type(config), f.name)}).')
    if _is_bool(f) and not isinstance(value, bool):
      raise ConfigError(f'{f.name} must be True or False, got {value!r} '
                        f'({where(type(config), f.name)}).')
    if f.type in (int, 'int') and (isinstance(value, bool) or not isinstance(value, int)
                                   or (o.minimum is not None and value < o.minimum)):
      least = f' >= {o.minimum}' if o.minimum is not None else ''
      raise ConfigError(f'{f.name} must be an int{least}, got {value!r} '
                        f'({where(type(config), f.name)}).')
    if (f.type in (int, 'int') and o.exec_property
        and not -INT64_LIMIT <= value < INT64_LIMIT):  # ML Metadata stores int64
      raise ConfigError(f'{f.name} must fit in 64 bits (-2**63 .. 2**63-1), got {value!r} '
                        f'({where(type(config), f.name)}).')


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
  """An argparse type: an int >= ``minimum``, else an error saying ``what`` was expected."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = minimum - 1
    if value < minimum:
      raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value
  return parse


non_negative_int = int_at_least(0, 'an integer >= 0')
positive_int = int_at_least(1, 'a positive integer')


def _is_bool(field: dataclasses.Field) -> bool:
  return field.type in (bool, 'bool')


def encode(field: dataclasses.Field, opt: Option, value: Any) -> Any:
  if opt.encode is not None:
    return opt.encode(value)
  return int(value) if _is_bool(field) else value


def decode(field: dataclasses.Field, opt: Option, value: Any) -> Any:
  if opt.decode is not None:
    return opt.decode(value)
  if _is_bool(field):
    return bool(int(value))
  return opt.kind(value) if opt.kind in (int, float) else value


def exec_types(config_class) -> Dict[str, type]:
  """{exec property key: str or int}: the component spec's PARAMETERS (key = field name)."""
  return {f.name: int if _is_bool(f) else o.kind
          for f, o in options_of(config_class) if o.exec_property}


def to_exec_properties(config) -> Dict[str, Any]:
  """{key: encoded value} of every exec-property option of ``config``."""
  return {f.name: encode(f, o, getattr(config, f.name))
          for f, o in options_of(type(config)) if o.exec_property}


def from_exec_properties(config_class, exec_properties: Mapping[str, Any], **given):
  """The config an execution recorded. A key it lacks (an older execution), None, or '' for an
  option whose default is not '' gets the field's default; ``given`` fields win."""
  values: Dict[str, Any] = {}
  for f, o in options_of(config_class):
    if f.name in given or not o.exec_property:
      continue
    raw = exec_properties.get(f.name)
    if raw is None or (raw == '' and f.default not in ('', dataclasses.MISSING)):
      continue
    values[f.name] = decode(f, o, raw)
  values.update(given)
  return config_class(**values)


def runtime_parameters(config_class) -> Dict[str, str]:
  """{field name: KFP pipeline parameter name} of the options that may be RuntimeParameters."""
  return {f.name: o.runtime for f, o in options_of(config_class) if o.runtime}


def dest(opt: Option) -> str:
  """argparse's attribute name for the flag ('--allowed-root' -> 'allowed_root')."""
  return opt.flag.lstrip('-').replace('-', '_')


def add_arguments(parser, config_class, exclude: Tuple[str, ...] = (),
                  help_for: Optional[Mapping[str, str]] = None) -> None:
  """Adds a flag for every option of ``config_class`` that has one (not in ``exclude``);
  ``help_for`` replaces a field's help line for this parser."""
  help_for = help_for or {}
  for f, o in options_of(config_class):
    if not o.flag or f.name in exclude:
      continue
    kwargs: Dict[str, Any] = {'help': help_for.get(f.name, o.help), 'dest': dest(o)}
    if o.metavar:
      kwargs['metavar'] = o.metavar
    if _is_bool(f):
      kwargs['action'] = 'store_true'
    else:
      if o.choices:
        kwargs['choices'] = o.choices
      parse = o.parse or (o.kind if o.kind in (int, float) else None)
      if parse is not None:
        kwargs['type'] = parse
      if o.repeat:
        kwargs.update(action='append', default=[])
      elif f.default is not dataclasses.MISSING:
        kwargs['default'] = (o.show or _show)(f.default)
    parser.add_argument(o.flag, **kwargs)


def _show(value: Any) -> Any:
  return value


def from_args(config_class, args: argparse.Namespace, **given):
  """The config the parsed flags give (flags this parser lacks keep their defaults; ``given``
  fields win). Paths become absolute unless they are URIs; repeated flags become tuples."""
  values: Dict[str, Any] = {}
  for f, o in options_of(config_class):
    if f.name in given or not o.flag or not hasattr(args, dest(o)):
      continue
    value = getattr(args, dest(o))
    if o.repeat:
      value = tuple(_absolute(v) if o.path else v for v in value)
    elif o.path:
      value = _absolute(value)
    values[f.name] = value
  values.update(given)
  return config_class(**values)


def _absolute(path: str) -> str:
  return path if not path or '://' in path else os.path.abspath(path)  # files.is_uri's rule
