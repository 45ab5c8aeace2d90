"""A tiny, safe expression language for workload templates and grade predicates.

Offsets like ``"task*2"`` and grades like ``"winners == 1 and eexist == tasks - 1"`` are plain
strings (so workloads stay frozen, hashable, printable and expressible in TOML). They are parsed
with `ast` and interpreted over a small whitelist — integers, booleans, names, ``+ - * // %``,
comparisons, ``and/or/not``, ``min/max/abs`` — never `eval`.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_FUNCS: dict[str, Callable[..., int]] = {"min": min, "max": max, "abs": abs}
_CONSTS = {"true": True, "false": False, "True": True, "False": False}


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> ast.expr:
    """Parse and whitelist-check `text`; raises ValueError naming the offending construct."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse expression {text!r}: {exc.msg}") from None
    for node in ast.walk(tree.body):
        _check_node(node, text)
    return tree.body


def _check_node(node: ast.AST, text: str) -> None:
    allowed = (
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.BinOp,
        ast.Compare,
        ast.Name,
        ast.Load,
        ast.Constant,
        ast.Call,
        *_BINOPS,
        *_CMPOPS,
    )
    if not isinstance(node, allowed):
        raise ValueError(f"{type(node).__name__} not allowed in expression {text!r}")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int):
        raise ValueError(f"only integer constants allowed in expression {text!r}")
    if isinstance(node, ast.Call) and (
        not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords
    ):
        raise ValueError(f"only min(), max(), abs() may be called in expression {text!r}")


def names(text: str) -> set[str]:
    """The free variable names `text` uses (function names and true/false excluded)."""
    tree = parse(text)
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and id(n) not in funcs and n.id not in _CONSTS
    }


def evaluate(text: str, env: Mapping[str, int | bool]) -> int | bool:
    """Evaluate `text` with variables from `env`; a missing name raises ValueError."""
    return _eval(parse(text), env, text)


def _eval(node: ast.expr, env: Mapping[str, int | bool], text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        if node.id not in env:
            raise ValueError(f"unknown name {node.id!r} in expression {text!r}")
        return env[node.id]
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, env, text) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, env, text)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env, text), _eval(node.right, env, text)
        if isinstance(node.op, ast.FloorDiv | ast.Mod) and right == 0:
            raise ValueError(f"division by zero in expression {text!r}")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env, text)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, env, text)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return _FUNCS[node.func.id](*(_eval(a, env, text) for a in node.args))
    raise ValueError(f"unsupported expression {text!r}")  # pragma: no cover - parse() rejects
