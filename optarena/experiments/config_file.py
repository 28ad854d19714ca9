"""A YAML config file read into its pydantic model, every error in it one line.

A config a user gives fails in a few ways: the file is missing or unreadable, it is not YAML, it
is not a mapping, or a value is wrong -- a misspelled key, a wrong type, an unknown environment
kind (:func:`load_config`), or an unknown agent, agent setting or workload (:func:`check_config`
with the config's own check of the names it uses, run by the command: a recorded config stays
readable when a name it used is gone). Each becomes a :class:`ConfigError` whose message is one
line: the file and the line where the YAML says it, what is wrong and what is valid. The command
prints it and exits with code 2 before anything runs or is written.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config, file or name the user gave is wrong. The message is one line: where, what is
    wrong, what is valid."""


class InvalidValue(ValueError):
    """An error about the value at ``key`` (a key of the model a validator checks, or a path of
    keys and list indices from the top of the config): messages point at its line."""

    def __init__(self, key: str | tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.key = key if isinstance(key, tuple) else (key,)


def load_config(model: type[M], path: Path, overrides: Mapping[str, Any] | None = None) -> M:
    """The ``model`` the YAML file ``path`` describes, with ``overrides`` (command-line options,
    named ``--key`` in messages) replacing its top-level keys; :class:`ConfigError` otherwise."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}{_yaml_place(err)}: not valid YAML: {_yaml_problem(err)}"
                          ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not a "
                          f"{type(data).__name__}")
    overrides = dict(overrides or {})
    try:
        return model.model_validate({**data, **overrides})
    except ValidationError as err:
        raise ConfigError(describe(err, model, path, text, overrides)) from None


def check_config(check: Callable[[], None], path: Path,
                 overrides: Mapping[str, Any] | None = None) -> None:
    """Run ``check`` (a config's checks of the names it uses); an :class:`InvalidValue` it
    raises becomes a :class:`ConfigError` of one line pointing at the key in ``path``."""
    try:
        check()
    except InvalidValue as err:
        text = path.read_text() if path.is_file() else ""
        where = _where(err.key, path, text, overrides)
        raise ConfigError(f"{where}: {_dotted(err.key)}: {err}") from None


def validated(model: type[M], values: Mapping[str, Any]) -> M:
    """The ``model`` that command-line ``values`` (named ``--key`` in messages) describe;
    :class:`ConfigError` otherwise."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as err:
        raise ConfigError(describe(err, model, overrides=values)) from None


def integers(text: str, option: str) -> list[int]:
    """A command-line option's comma-separated integers (``--seeds 0,1,2``)."""
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option}: comma-separated integers, e.g. 0,1,2; got {text!r}") from None


def describe(err: ValidationError, model: type[BaseModel], path: Path | None = None,
             text: str = "", overrides: Mapping[str, Any] | None = None) -> str:
    """One line for a validation error: where (``FILE:LINE``, or the ``--option``), the key,
    what is wrong and what is valid; later errors are counted, not listed."""
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a misspelled
    first = errors[0]  # key comes first: it explains the key missing beside it
    loc: tuple[Any, ...] = tuple(first["loc"])
    error = first.get("ctx", {}).get("error")
    if isinstance(error, InvalidValue):
        loc = (*loc, *error.key)
    where = _where(loc, path, text, overrides) or model.__name__
    key = _dotted(loc)
    if first["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        keys = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        what = (f"unknown key {loc[-1]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                + (f"; valid keys: {', '.join(keys)}" if keys else ""))
        key = _dotted(loc[:-1])
    elif first["type"] == "missing":
        what = f"{loc[-1]!r} is required"
        key = _dotted(loc[:-1])
    elif first["type"] in ("value_error", "assertion_error"):
        what = str(error or first["msg"])
    else:
        what = f"{first['msg']} (got {first['input']!r})"
    if where.startswith("--") and key == str(loc[0]):
        key = ""  # the option names it
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {key + ': ' if key else ''}{what}{more}"


def _where(loc: Sequence[Any], path: Path | None, text: str,
           overrides: Mapping[str, Any] | None) -> str:
    """``--key`` for a command-line value, else ``FILE:LINE`` (``FILE`` where no line is found;
    ``""`` without a file)."""
    if loc and overrides and loc[0] in overrides:
        return f"--{str(loc[0]).replace('_', '-')}"
    if path is None:
        return ""
    line = _line(text, loc)
    return f"{path}:{line}" if line is not None else str(path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """What the parser says, with where the construct it was reading began."""
    problem = getattr(err, "problem", None)
    if problem is None:
        return " ".join(str(err).split())
    context, mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and mark is not None:
        return f"{problem} ({context} begun at line {mark.line + 1})"
    return str(problem)


def _yaml_place(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _dotted(loc: Sequence[Any]) -> str:
    """``agents[0].config`` for the location ``("agents", 0, "config")``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc
                   ).lstrip(".")


def _line(text: str, loc: Sequence[Any]) -> int | None:
    """The line of the YAML text where the deepest part of ``loc`` it has is written."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(part)]
            if not found:
                break
            line, node = found[0][0].start_mark.line + 1, found[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model that holds the keys at ``loc`` (list indices skipped), if it is one."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        if current is None or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None
