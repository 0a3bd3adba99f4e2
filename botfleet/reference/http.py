"""The HTTP API's reference: every route of the OpenAPI document and every message,
field by field, read from the protocol's msgspec structs (botfleet/protocol)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
from msgspec import inspect as mi

from botfleet.protocol import messages as m
from botfleet.protocol.openapi import ROUTES, Route
from botfleet.reference.markdown import code, table

_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def _struct_link(kind: type) -> str:
    return f"[{kind.__name__}](#{kind.__name__.lower()})"


def type_text(info: mi.Type) -> str:
    """A field's type in words, with its bounds: `int ≥ 1 ≤ 100`, `list of string`."""
    if isinstance(info, mi.Metadata):
        return type_text(info.type)
    if isinstance(info, mi.IntType | mi.FloatType):
        name = "integer" if isinstance(info, mi.IntType) else "number"
        bounds = [f"{sign} {getattr(info, attr):g}" for attr, sign in _BOUNDS
                  if getattr(info, attr) is not None]  # fmt: skip
        return " ".join([name, *bounds])
    if isinstance(info, mi.StrType):
        return (
            "string"
            + _length(info.min_length, info.max_length, "characters")
            + (f" matching {code(info.pattern)}" if info.pattern else "")
        )
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        items = type_text(info.item_type)
        return f"list of {items}" + _length(info.min_length, info.max_length, "items")
    if isinstance(info, mi.DictType):
        if isinstance(info.value_type, mi.AnyType):
            return "object"
        return f"object of {type_text(info.value_type)}"
    if isinstance(info, mi.StructType):
        return _struct_link(info.cls)
    if isinstance(info, mi.LiteralType):
        return " / ".join(code(msgspec.json.encode(value).decode()) for value in info.values)
    if isinstance(info, mi.UnionType):
        return " or ".join(type_text(part) for part in info.types)
    simple = {
        mi.NoneType: "null",
        mi.AnyType: "any",
        mi.BoolType: "boolean",
        mi.DateTimeType: "date-time (RFC 3339)",
    }
    for kind, text in simple.items():
        if isinstance(info, kind):
            return text
    return type(info).__name__.removesuffix("Type").lower()


def _length(low: int | None, high: int | None, unit: str) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" (at least {low} {unit})"
    return f" ({low or 0}–{high} {unit})"


def default_text(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT:
        return "left out"  # msgspec.UNSET: the field is absent unless it has something to say
    value = field.default_factory() if field.default is msgspec.NODEFAULT else field.default
    return code(msgspec.json.encode(value).decode())


def _structs_in(info: mi.Type) -> Iterable[type]:
    if isinstance(info, mi.StructType):
        yield info.cls
    elif isinstance(info, mi.Metadata):
        yield from _structs_in(info.type)
    elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        yield from _structs_in(info.item_type)
    elif isinstance(info, mi.DictType):
        yield from _structs_in(info.value_type)
    elif isinstance(info, mi.UnionType):
        for part in info.types:
            yield from _structs_in(part)


def messages(routes: Sequence[Route] = ROUTES) -> list[type]:
    """Every struct the routes send or answer, and the structs inside them, in the order
    a reader meets them; the error body last."""
    pending: list[type] = [kind for r in routes for kind in (r.request, r.response) if kind]
    pending.append(m.ErrorResponse)
    seen: list[type] = []
    while pending:
        kind = pending.pop(0)
        if kind in seen:
            continue
        seen.append(kind)
        info = mi.type_info(kind)
        if isinstance(info, mi.StructType):
            for field in info.fields:
                pending.extend(_structs_in(field.type))
    return seen


def _auth_text(route: Route) -> str:
    return f"{route.auth} token" if route.auth else "none"


def _route_rows(routes: Sequence[Route]) -> list[list[str]]:
    rows = []
    for route in routes:
        query = ", ".join(code(f"{name}={kind}") for name, kind in route.query)
        request = _struct_link(route.request) if route.request else "–"
        if query:
            request = query if route.request is None else f"{request}; {query}"
        answer = f"{route.status} " + (_struct_link(route.response) if route.response else "")
        rows.append(
            [code(f"{route.method.upper()} {route.path}"), _auth_text(route), request,
             answer.strip(), route.summary]
        )  # fmt: skip
    return rows


def _message_section(kind: type) -> str:
    info = mi.type_info(kind)
    parts = [f"### {kind.__name__}", ""]
    doc = kind.__doc__
    if doc and doc != m.Struct.__doc__:
        parts += [" ".join(doc.split()), ""]
    if isinstance(info, mi.StructType) and info.fields:
        rows = [[code(f.encode_name), type_text(f.type), default_text(f)] for f in info.fields]
        parts += [table(["field", "type", "default"], rows), ""]
    else:
        parts += ["No fields.", ""]
    return "\n".join(parts)


def http_reference(routes: Sequence[Route] = ROUTES) -> str:
    """The Markdown of every route and every message they carry."""
    parts = [
        "## Routes",
        "",
        table(["call", "token", "request", "answer", "what"], _route_rows(routes)),
        "",
        "## Messages",
        "",
    ]
    parts += [_message_section(kind) for kind in messages(routes)]
    return "\n".join(parts).rstrip() + "\n"
