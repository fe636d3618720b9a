"""``GET /api/v1/docs``: the OpenAPI document rendered as one plain HTML page.

No JavaScript and nothing from a CDN (the bot often runs without internet):
every operation with its parameters, request body, responses and examples,
and every schema, straight from the document the code generates.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["render"]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}
.op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.m{font-weight:bold;font-family:monospace;padding:.1rem .4rem;border-radius:3px;background:#eef}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}
pre{background:#f6f6f6;padding:.6rem;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
"""


def _ref(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_ref(s) for s in schema["anyOf"])
    kind = schema.get("type", "object")
    if kind == "array":
        return f"array of {_ref(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(json.dumps(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{escape(json.dumps(schema['const']))}</code>"
    return escape(str(kind))


def _json(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>"


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    out = [f'<div class="op" id="{escape(op.get("operationId", ""))}">',
           f'<p><span class="m">{method.upper()}</span> <code>{escape(path)}</code> — '
           f'{escape(op.get("summary", ""))}</p>']
    if op.get("description"):
        out.append(f"<p>{escape(op['description'])}</p>")
    if op.get("security"):
        out.append("<p>Authorization: <code>Bearer KEY</code></p>")
    params = op.get("parameters", [])
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>about</th></tr>")
        for p in params:
            out.append(f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                       f"<td>{_ref(p.get('schema', {}))}</td><td>{'yes' if p.get('required') else 'no'}</td>"
                       f"<td>{escape(p.get('description', ''))}</td></tr>")
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        out.append(f"<p>Body: {_ref(body.get('schema', {}))}</p>")
    out.append("<table><tr><th>status</th><th>about</th><th>body</th></tr>")
    for status, response in op.get("responses", {}).items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        out.append(f"<tr><td>{escape(status)}</td><td>{escape(response.get('description', ''))}</td>"
                   f"<td>{_ref(schema) if schema else ''}</td></tr>")
    out.append("</table></div>")
    return out


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>']
    if schema.get("description"):
        out.append(f"<p>{escape(schema['description'])}</p>")
    props = schema.get("properties", {})
    if props:
        required = set(schema.get("required", []))
        out.append("<table><tr><th>field</th><th>type</th><th>required</th><th>about</th></tr>")
        for field, sub in props.items():
            out.append(f"<tr><td><code>{escape(field)}</code></td><td>{_ref(sub)}</td>"
                       f"<td>{'yes' if field in required else 'no'}</td>"
                       f"<td>{escape(sub.get('description', ''))}</td></tr>")
        out.append("</table>")
    elif "enum" in schema:
        out.append(f"<p>One of {_ref(schema)}</p>")
    for example in schema.get("examples", [])[:1]:
        out.append("<p>Example:</p>" + _json(example))
    return out


def render(document: dict[str, Any]) -> str:
    info = document.get("info", {})
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{escape(info.get('title', 'API'))}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{escape(info.get('title', 'API'))} {escape(info.get('version', ''))}</h1>",
             f"<p>{escape(info.get('description', ''))}</p>",
             '<p>The machine-readable document: <a href="openapi.json">openapi.json</a> (OpenAPI '
             f"{escape(document.get('openapi', ''))}).</p>", "<h2>Operations</h2>"]
    for path, methods in document.get("paths", {}).items():
        for method, op in methods.items():
            parts.extend(_operation(path, method, op))
    parts.append("<h2>Schemas</h2>")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        parts.extend(_schema(name, schema))
    parts.append("</body></html>")
    return "\n".join(parts)
