"""Loads recipes: YAML -> overrides -> the task's typed schema.

Errors name the file and the full path of the field, what was expected, and
for an unknown key the closest valid key.

Example:

>>> from toolkit.config import load_recipe
>>> recipe = load_recipe(
...     "recipes/image_classification/fashion_mnist.yaml",
...     overrides={"train.epochs": 1},
... )
>>> recipe.train.epochs
1
"""

import os
import typing

import yaml
from pydantic import BaseModel, ValidationError

from toolkit.errors import RecipeError
from toolkit.registry import did_you_mean

PATH_PREFIXES = ("file:", "run:", "hub:")


def parse_overrides(items):
    """Parses CLI overrides `a.b=value` into a dict of dotted keys to values.

    Values are parsed with `yaml.safe_load`, so `train.epochs=3` gives an int,
    `data.image_size=[64,64]` a list and `model.weights=none` the string
    `"none"` (YAML `null`/`~` give None).

    Args:
        items: list of str. Overrides as typed on the command line.
    """
    overrides = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise RecipeError(
                f"override {item!r} is not of the form key.path=value (e.g. train.epochs=3)"
            )
        try:
            overrides[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as error:
            raise RecipeError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(error)})")
    return overrides


def apply_overrides(data, overrides, source="override"):
    """Sets dotted keys in a nested dict (in place) and returns it."""
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise RecipeError(
                    f"{source} {key}={value!r}: {where} is a {type(child).__name__}, not a section, "
                    f"so it has no key {parts[depth + 1]!r}"
                )
            node = child
        node[parts[-1]] = value
    return data


def _yaml_problem(error):
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


def read_yaml(path):
    """Reads a YAML mapping from `path` with `yaml.safe_load`."""
    if not os.path.exists(path):
        raise RecipeError(f"recipe file {path} does not exist; list the shipped ones with: toolkit list recipes")
    if os.path.isdir(path):
        raise RecipeError(f"{path} is a directory; give a recipe .yaml file")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text; save the recipe as UTF-8 YAML")
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: malformed YAML at {_yaml_problem(error)}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping (key: value), got a {type(data).__name__}")
    return data


def load_recipe(path_or_data, overrides=None, name=None):
    """Loads and validates a recipe.

    Args:
        path_or_data: str path of a YAML recipe, or a dict with its content.
        overrides: dict of dotted keys to values, or list of `a.b=value`
            strings, applied before validation.
        name: str or None. Run name to use when the recipe sets none
            (default: the recipe file name without extension).

    Returns:
        The task's recipe object (a subclass of `toolkit.config.schema.Recipe`).
    """
    from toolkit.config.tasks import TASKS

    if isinstance(path_or_data, dict):
        data, where = _deep_copy(path_or_data), "recipe"
    else:
        path_or_data = os.fspath(path_or_data)
        data, where = read_yaml(path_or_data), path_or_data
        if name is None:
            name = os.path.splitext(os.path.basename(path_or_data))[0]
    if isinstance(overrides, (list, tuple)):
        overrides = parse_overrides(overrides)
    apply_overrides(data, overrides or {})

    task_name = data.get("task")
    if task_name is None:
        raise RecipeError(f"{where}: task: required; one of {', '.join(TASKS.names())}")
    if not isinstance(task_name, str) or task_name not in TASKS:
        raise RecipeError(
            f"{where}: task: unknown task {task_name!r}{did_you_mean(task_name, TASKS.names())} "
            f"(tasks: {', '.join(TASKS.names())})"
        )
    schema = TASKS.get(task_name).config_class
    try:
        recipe = schema.model_validate(data)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, schema, where))
    if recipe.name is None and name is not None:
        recipe.name = _safe_name(name)
    if recipe.train.monitor is None:
        recipe.train.monitor = TASKS.get(task_name).default_monitor
    return absolutize_paths(recipe)


def _safe_name(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "run"


def _deep_copy(data):
    return yaml.safe_load(yaml.safe_dump(data))


def absolutize_paths(recipe):
    """Makes file paths in a recipe absolute, so a saved run resumes anywhere."""
    data = recipe.data
    if data.path and "://" not in data.path:
        data.path = os.path.abspath(os.path.expanduser(data.path))
    model = recipe.model
    for field in ("backbone", "weights", "init"):  # init: the speech CTC model's run:
        value = getattr(model, field, None)
        if not isinstance(value, str):
            continue
        for prefix in PATH_PREFIXES:
            if value.startswith(prefix):
                rest = value[len(prefix):]
                if prefix == "hub:" and not (rest.startswith((".", "/", "~")) or os.path.isdir(rest)):
                    break  # a preset name, not a directory
                setattr(model, field, prefix + os.path.abspath(os.path.expanduser(rest)))
    vocabulary = getattr(getattr(recipe, "tokenizer", None), "vocabulary", None)
    if vocabulary:
        recipe.tokenizer.vocabulary = os.path.abspath(os.path.expanduser(vocabulary))
    recipe.output.dir = os.path.abspath(os.path.expanduser(recipe.output.dir))
    return recipe


def recipe_to_yaml(recipe):
    """Returns the resolved recipe as YAML text (round-trips through load_recipe)."""
    data = recipe.model_dump(mode="json")
    if data.get("tune") is None:
        data.pop("tune", None)
    order = ["task", "name", "description", "data", "tokenizer", "model", "decoding", "loss", "train", "export",
             "output", "track", "tune"]
    data = {key: data[key] for key in sorted(data, key=lambda k: order.index(k) if k in order else len(order))}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


# ------------------------------------------------------------------ error text


def format_validation_error(error, schema, where):
    """Turns a pydantic ValidationError into one line naming each bad field."""
    problems = [_format_one(item, schema) for item in error.errors()]
    first = f"{where}: {problems[0]}"
    if len(problems) > 1:
        first += f" (and {len(problems) - 1} more: " + "; ".join(problems[1:4])
        first += "; ..." if len(problems) > 4 else ""
        first += ")"
    return first


def _format_one(item, schema):
    loc = [str(part) for part in item["loc"]]
    path = ".".join(loc) or "recipe"
    kind = item["type"]
    value = item.get("input")
    if kind == "extra_forbidden":
        siblings = _field_names(schema, item["loc"][:-1])
        hint = did_you_mean(loc[-1], siblings) if siblings else ""
        valid = f" (valid keys: {', '.join(siblings)})" if siblings and not hint else ""
        return f"{path}: unknown key{hint}{valid}"
    if kind == "missing":
        return f"{path}: required field is missing"
    if kind == "literal_error":
        expected = item.get("ctx", {}).get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ",").split(",") if c.strip()]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        if loc and loc[-1] == "[key]":  # a key of a mapping whose keys are fixed (e.g. data.espeak.kinds)
            return f"{'.'.join(loc[:-1])}: unknown key{hint or ' (valid keys: ' + ', '.join(choices) + ')'}"
        return f"{path}: expected one of {', '.join(choices)}; got {value!r}{hint}"
    message = item["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if message.startswith("Input should be "):
        message = "expected " + message[len("Input should be "):]
    if not loc and kind == "value_error":  # a check of the whole recipe: its message names the fields
        return message
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in (
        "greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
    ):
        message += f"; got {value!r}"
    return f"{path}: {message}"


def _field_names(schema, loc):
    """Field names of the section at `loc` inside `schema`, or []."""
    model = schema
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _section_model(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _section_model(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_model(arg)
        if found is not None:
            return found
    return None
