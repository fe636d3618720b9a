"""Twilio's OpenAPI description of the 2010-04-01 REST API, and checks against it.

``twilio_api_v2010.yaml`` is Twilio's own file from the twilio-oai project
(MIT, see ``LICENSE`` beside it), shipped unchanged so the sandbox can
follow it at run time:

* :func:`check_params` validates a request's form or query parameters
  against an operation: required names, enum values, integers, booleans,
  patterns and lengths.  Unknown parameters are reported separately; Twilio
  ignores them (warning 20001) and so does the sandbox.
* :func:`response_validator` builds a JSON-schema validator for an
  operation's response (needs ``openapi-schema-validator``, a test extra):
  the tests run every sandbox response through it.

The file is 1.5 MB; it is parsed once per process (libyaml when present).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).with_name("twilio_api_v2010.yaml")
LICENSE_PATH = Path(__file__).with_name("LICENSE")
API_PREFIX = "/2010-04-01/Accounts/{AccountSid}"

MESSAGES = API_PREFIX + "/Messages.json"
MESSAGE = API_PREFIX + "/Messages/{Sid}.json"
CALLS = API_PREFIX + "/Calls.json"
CALL = API_PREFIX + "/Calls/{Sid}.json"
RECORDINGS = API_PREFIX + "/Recordings.json"
RECORDING = API_PREFIX + "/Recordings/{Sid}.json"

_BOOLEANS = {"true", "false"}


@cache
def load_spec() -> dict[str, Any]:
    """The parsed OpenAPI document (cached)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open("rb") as fh:
        document = yaml.load(fh, Loader=loader)  # noqa: S506 - a SafeLoader
    if not isinstance(document, dict) or "paths" not in document:
        raise ValueError(f"{SPEC_PATH}: not an OpenAPI document")
    return document


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (one level is all the 2010 API uses for parameters)."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = load_spec()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return resolve(node)


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    required: bool = False

    @property
    def is_array(self) -> bool:
        return self.schema.get("type") == "array"

    @property
    def item_schema(self) -> dict[str, Any]:
        return resolve(self.schema.get("items", {})) if self.is_array else self.schema


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    operation_id: str
    path_params: dict[str, Param] = field(default_factory=dict)
    query_params: dict[str, Param] = field(default_factory=dict)
    form_params: dict[str, Param] = field(default_factory=dict)
    conditional: tuple[tuple[str, ...], ...] = ()
    responses: dict[int, dict[str, Any] | None] = field(default_factory=dict)

    def success_status(self) -> int:
        return min(self.responses)


@cache
def operation(path: str, method: str) -> Operation:
    """The operation at *path* (a template such as :data:`MESSAGES`) for an HTTP *method*."""
    item = load_spec()["paths"][path]
    op = item[method.lower()]
    path_params: dict[str, Param] = {}
    query_params: dict[str, Param] = {}
    for raw in op.get("parameters", []):
        param = Param(raw["name"], resolve(raw.get("schema", {})), bool(raw.get("required")))
        (path_params if raw["in"] == "path" else query_params)[param.name] = param
    form_params: dict[str, Param] = {}
    body = op.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded")
    if body:
        schema = resolve(body["schema"])
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            form_params[name] = Param(name, resolve(prop), name in required)
    responses: dict[int, dict[str, Any] | None] = {}
    for status, response in op.get("responses", {}).items():
        content = (response or {}).get("content", {}).get("application/json")
        responses[int(status)] = content["schema"] if content else None
    conditional = tuple(tuple(group) for group in op.get("x-twilio", {}).get("conditional", []))
    return Operation(
        path=path,
        method=method.upper(),
        operation_id=op["operationId"],
        path_params=path_params,
        query_params=query_params,
        form_params=form_params,
        conditional=conditional,
        responses=responses,
    )


@dataclass(frozen=True)
class Problem:
    """One way a request breaks the spec; ``kind`` is required/enum/type/pattern/length/range."""

    name: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def check_value(name: str, value: str, schema: dict[str, Any]) -> Problem | None:
    """Check one string value from a form or query string against a parameter schema."""
    schema = resolve(schema)
    kind = schema.get("type", "string")
    if "enum" in schema and value not in schema["enum"]:
        return Problem(name, "enum", "must be one of " + ", ".join(map(str, schema["enum"])))
    if kind == "integer":
        try:
            number = int(value)
        except ValueError:
            return Problem(name, "type", "must be an integer")
        if "minimum" in schema and number < schema["minimum"]:
            return Problem(name, "range", f"must be at least {schema['minimum']}")
        if "maximum" in schema and number > schema["maximum"]:
            return Problem(name, "range", f"must be at most {schema['maximum']}")
    elif kind == "number":
        try:
            float(value)
        except ValueError:
            return Problem(name, "type", "must be a number")
    elif kind == "boolean":
        if value.lower() not in _BOOLEANS:
            return Problem(name, "type", "must be true or false")
    elif kind == "string":
        if "minLength" in schema and len(value) < schema["minLength"]:
            return Problem(name, "length", f"must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return Problem(name, "length", f"must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return Problem(name, "pattern", f"must match {schema['pattern']}")
    return None


def check_params(
    params: dict[str, Param], values: dict[str, list[str]], *, check_required: bool = True
) -> tuple[list[Problem], list[str]]:
    """Problems with *values* (name -> every value sent) and the names the spec does not know."""
    problems: list[Problem] = []
    for name, param in params.items():
        sent = values.get(name)
        if not sent:
            if param.required and check_required:
                problems.append(Problem(name, "required", "is required"))
            continue
        for value in sent if param.is_array else sent[-1:]:
            problem = check_value(name, value, param.item_schema)
            if problem:
                problems.append(problem)
                break
    unknown = sorted(name for name in values if name not in params)
    return problems, unknown


@cache
def _response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    schema = operation(path, method).responses.get(status)
    if schema is None:
        raise KeyError(f"{method} {path} has no JSON response for status {status}")
    # Make the schema a root document that carries the components its $refs point into.
    return {**schema, "components": load_spec()["components"]}


@cache
def response_validator(path: str, method: str, status: int | None = None) -> Any:
    """An ``OAS30Validator`` for the JSON response of an operation (default: its success status).

    Needs the ``openapi-schema-validator`` package (in the ``test`` extra).
    Validators are cached: building one walks all of the spec's components.
    """
    from openapi_schema_validator import OAS30Validator

    op = operation(path, method)
    return OAS30Validator(_response_schema(path, method, status or op.success_status()))
