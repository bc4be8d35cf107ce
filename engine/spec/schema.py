"""JSON Schema validation of spec documents, with errors in plain words at the offending node.

The schemas live in the repository's ``schemas/`` folder (``integration.v1.schema.json``,
``connection.v1.schema.json``). Each jsonschema error becomes one Diagnostic at the mark of the node
it is about ("unknown key "feilds"; did you mean "fields"?"), never a raw schema dump, and never
echoing the value of a secret.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import Diagnostic, did_you_mean
from engine.spec.loader import Document
from engine.spec.model import API_VERSIONS

KINDS: dict[str, str] = {"Integration": "integration", "Connection": "connection"}


def schemas_dir() -> Path:
    import engine

    return Path(engine.__file__).resolve().parent.parent / "schemas"


def schema_path(kind: str) -> Path:
    return schemas_dir() / f"{KINDS[kind]}.v1.schema.json"


@cache
def schema(kind: str) -> dict[str, Any]:
    return json.loads(schema_path(kind).read_text("utf-8"))


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every local ``$ref`` replaced by a copy of its target (the schemas are not
    recursive): jsonschema then validates without resolving references, about 40% faster."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/$defs/"):
            target = _inline_refs(defs[node["$ref"].rsplit("/", 1)[1]], defs)
            return {**target, **{k: _inline_refs(v, defs) for k, v in node.items() if k != "$ref"}}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(x, defs) for x in node]
    return node


@cache
def _inlined(kind: str) -> dict[str, Any]:
    raw = schema(kind)
    return _inline_refs(raw, raw.get("$defs", {}))


@cache
def _validator(kind: str) -> Any:
    """The jsonschema validator: built (and jsonschema imported) only for a document the fast check
    does not accept, since it alone words the errors."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_inlined(kind))


@cache
def _fast_check(kind: str) -> Any:
    return compile_fast(_inlined(kind))


def _err(doc: Document, path: tuple[Any, ...], message: str, code: str, *, key: bool = False) -> Diagnostic:
    m = doc.key_at(path) if key else doc.at(path)
    return Diagnostic(m.file, m.line, m.col, "error", message, code)


def where(path: tuple[Any, ...]) -> str:
    """``spec.modules[0].fields[2]`` for a path."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "the document"


def _name(path: tuple[Any, ...]) -> str:
    if path and isinstance(path[-1], int):
        return f"each entry of {_name(path[:-1])}"
    for p in reversed(path):
        if isinstance(p, str):
            return p
    return "the document"


def _is_secret_path(path: tuple[Any, ...]) -> bool:
    return len(path) >= 3 and path[0] == "spec" and path[1] == "auth"


def _type_words(t: Any) -> str:
    words = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
             "object": "a mapping", "array": "a list", "null": "empty"}
    ts = t if isinstance(t, list) else [t]
    return " or ".join(words.get(x, x) for x in ts)


def _got(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_PATTERN_WORDS = {
    "name": "lowercase letters, digits and dashes, starting with a letter (at most 63 characters)",
    "created_within": "a number of days such as 365d",
    "owner": "an email address",
    "base_url": "a URL starting with http:// or https://",
    "org_id": "the numeric organisation id, as a string (quote it)",
    "env": "an environment variable name (letters, digits and _)",
}

_ANYOF_WORDS = {
    "left": "a field api name or a list of field api names",
    "right": "a field api name or a list of field api names",
    "view": "the name of one list view",
    "sandbox": "true, false or {seed: N}",
}


def _translate(doc: Document, e: Any) -> list[Diagnostic]:
    path = tuple(e.absolute_path)
    name = _name(path)
    v = e.validator
    inst = e.instance
    if _is_secret_path(path) and v in ("type", "anyOf", "oneOf") and not isinstance(inst, dict):
        return [_err(doc, path, f"{name} is written inline: secrets must be references, {{env: NAME}} or "
                     "{file: PATH}, never the secret itself (and remove it from git history)", "inline-secret")]
    if v == "additionalProperties":
        allowed = list((e.schema.get("properties") or {}).keys())
        extras = [k for k in inst if k not in allowed] if isinstance(inst, dict) else []
        return [_err(doc, path + (k,), f'unknown key "{k}" in {where(path)}{did_you_mean(str(k), allowed)}',
                     "unknown-key", key=True) for k in extras]
    if v == "required":
        missing = [k for k in e.validator_value if not (isinstance(inst, dict) and k in inst)]
        return [_err(doc, path, f'{where(path)} is missing "{k}"', "missing-key", key=True) for k in missing]
    if v == "enum":
        choices = [str(c) for c in e.validator_value]
        if path == ("apiVersion",):
            return [_err(doc, path, f'unknown apiVersion "{inst}"; known: {", ".join(API_VERSIONS)}', "api-version")]
        if isinstance(inst, str):
            hint = did_you_mean(inst, choices)
            got = f' (got "{inst}")' + (hint if "did you mean" in hint else "")
        else:
            got = f" (got {_got(inst)})"
        return [_err(doc, path, f"{name} must be one of {', '.join(choices)}{got}", "enum")]
    if v == "type":
        return [_err(doc, path, f"{name} must be {_type_words(e.validator_value)} (got {_got(inst)})", "type")]
    if v == "pattern":
        words = _PATTERN_WORDS.get(name, f"text matching {e.validator_value}")
        shown = f' "{inst}"' if (not _is_secret_path(path) or name == "env") and name != "base_url" else ""
        return [_err(doc, path, f"{name}{shown} must be {words}", "pattern")]
    if v in ("minimum", "maximum"):
        bound = "at least" if v == "minimum" else "at most"
        return [_err(doc, path, f"{name} must be {bound} {e.validator_value} (got {inst})", "range")]
    if v == "minItems":
        n = e.validator_value
        return [_err(doc, path, f"{name} must list at least {n} {'entry' if n == 1 else 'entries'}", "min-items")]
    if v == "minLength":
        return [_err(doc, path, f"{name} must not be empty", "empty")]
    if v in ("minProperties", "maxProperties"):
        if len(path) >= 1 and _is_secret_path(path):
            return [_err(doc, path, f"{name} must be exactly one of {{env: NAME}} or {{file: PATH}}", "secret-ref")]
        return [_err(doc, path, f"{where(path)} has the wrong number of keys", "keys")]
    if v in ("anyOf", "oneOf"):
        # Translate the branch whose type matches the value (e.g. sandbox: {seed: -1}), else say what fits.
        branches: dict[int, list[Any]] = {}
        for sub in e.context or ():
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        for subs in branches.values():
            top_type = [s for s in subs if s.validator == "type" and tuple(s.absolute_path) == path]
            if not top_type:
                out: list[Diagnostic] = []
                for s in subs:
                    out += _translate(doc, s)
                if out:
                    return out
        words = _ANYOF_WORDS.get(name, "a valid value")
        return [_err(doc, path, f"{name} must be {words} (got {_got(inst)})", "type")]
    return [_err(doc, path, f"{where(path)} is not valid here ({v})", "schema")]


_FAST_KEYWORDS = frozenset({
    "$schema", "$id", "title", "description", "type", "enum", "properties", "required", "additionalProperties",
    "items", "anyOf", "pattern", "minimum", "maximum", "minItems", "minLength", "minProperties", "maxProperties",
})
_PY_TYPES: dict[str, Any] = {"string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)}


def _is_type(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _PY_TYPES[t])


def fast_valid(schema: dict[str, Any], value: Any) -> bool | None:
    """True/False for the subset of JSON Schema our (ref-inlined) schemas use; None when a keyword is
    outside it. Only a shortcut for the common case: a document it calls invalid (or cannot judge)
    goes through jsonschema, which alone produces the errors."""
    import re

    if not _FAST_KEYWORDS.issuperset(schema):
        return None
    t = schema.get("type")
    if t is not None and not any(_is_type(value, x) for x in (t if isinstance(t, list) else [t])):
        return False
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        return False
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return False
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return False
        if "items" in schema:
            for item in value:
                r = fast_valid(schema["items"], item)
                if r is not True:
                    return r
    if isinstance(value, dict):
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            return False
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            return False
        if any(k not in value for k in schema.get("required", ())):
            return False
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                r = fast_valid(props[k], v)
            elif extra is False:
                return False
            elif isinstance(extra, dict):
                r = fast_valid(extra, v)
            else:
                continue
            if r is not True:
                return r
    if "anyOf" in schema:
        results = [fast_valid(sub, value) for sub in schema["anyOf"]]
        if True in results:
            return True
        return None if None in results else False
    return True


def _unknown(value: Any) -> None:
    return None


def compile_fast(schema: dict[str, Any]) -> Any:
    """``fast_valid(schema, ·)`` compiled once: a function of the value giving the same answer (True,
    False, or None when a keyword is outside the subset), with the schema's lookups done up front."""
    import re

    if not _FAST_KEYWORDS.issuperset(schema):
        return _unknown
    t = schema.get("type")
    types = None if t is None else tuple(t if isinstance(t, list) else [t])
    simple = types is not None and not ({"integer", "number"} & set(types))
    pytypes = tuple(_PY_TYPES[x] for x in types) if simple and types is not None else ()
    enum = schema.get("enum")
    min_len = schema.get("minLength")
    pattern = re.compile(schema["pattern"]).search if "pattern" in schema else None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    min_items = schema.get("minItems")
    items = compile_fast(schema["items"]) if "items" in schema else None
    min_props, max_props = schema.get("minProperties"), schema.get("maxProperties")
    required = tuple(schema.get("required", ()))
    props = {k: compile_fast(v) for k, v in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    extra_check = compile_fast(extra) if isinstance(extra, dict) else None
    closed = extra is False
    any_of = [compile_fast(sub) for sub in schema["anyOf"]] if "anyOf" in schema else None

    def check(value: Any) -> bool | None:
        if types is not None:
            if simple:
                if not isinstance(value, pytypes):
                    return False
            elif not any(_is_type(value, x) for x in types):
                return False
        if enum is not None and not any(value == e and type(value) is type(e) for e in enum):
            return False
        if isinstance(value, str):
            if min_len is not None and len(value) < min_len:
                return False
            if pattern is not None and pattern(value) is None:
                return False
        elif isinstance(value, dict):
            if min_props is not None and len(value) < min_props:
                return False
            if max_props is not None and len(value) > max_props:
                return False
            for k in required:
                if k not in value:
                    return False
            for k, v in value.items():
                sub = props.get(k)
                if sub is not None:
                    r = sub(v)
                elif closed:
                    return False
                elif extra_check is not None:
                    r = extra_check(v)
                else:
                    continue
                if r is not True:
                    return r
        elif isinstance(value, list):
            if min_items is not None and len(value) < min_items:
                return False
            if items is not None:
                for item in value:
                    r = items(item)
                    if r is not True:
                        return r
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if minimum is not None and value < minimum:
                return False
            if maximum is not None and value > maximum:
                return False
        if any_of is not None:
            results = [sub(value) for sub in any_of]
            if True in results:
                return True
            return None if None in results else False
        return True

    return check


def validate_document(doc: Document) -> tuple[str | None, list[Diagnostic]]:
    """The document's kind and its schema errors (apiVersion and kind are checked first)."""
    value = doc.value
    if not isinstance(value, dict):
        return None, [Diagnostic(doc.mark.file, doc.mark.line, doc.mark.col, "error",
                                 f"a spec document must be a mapping with apiVersion, kind, metadata and spec "
                                 f"(got {_got(value)})", "not-a-mapping")]
    api = value.get("apiVersion")
    if api is None:
        return None, [_err(doc, (), f"missing apiVersion: add `apiVersion: {API_VERSIONS[-1]}`", "api-version")]
    if not isinstance(api, str) or api not in API_VERSIONS:
        return None, [_err(doc, ("apiVersion",), f'unknown apiVersion "{api}"; known: {", ".join(API_VERSIONS)}',
                           "api-version")]
    kind = value.get("kind")
    if kind is None:
        return None, [_err(doc, (), f"missing kind: {' or '.join(KINDS)}", "kind")]
    if not isinstance(kind, str) or kind not in KINDS:
        return None, [_err(doc, ("kind",), f'unknown kind "{kind}"{did_you_mean(str(kind), list(KINDS))}', "kind")]
    if _fast_check(kind)(value) is True:
        return kind, []
    diags: list[Diagnostic] = []
    for e in _validator(kind).iter_errors(value):
        diags += _translate(doc, e)
    return kind, sorted(set(diags))
