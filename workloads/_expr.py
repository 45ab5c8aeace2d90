"""A tiny, safe expression language for workload templates and grade predicates.

Offsets like ``"task*2"`` and grades like ``"winners == 1 and eexist == tasks - 1"`` are plain
strings (so workloads stay frozen, hashable, printable and expressible in TOML). They are parsed
with `ast` and interpreted over a small whitelist — integers, booleans, names, ``+ - * // %``,
comparisons, ``and/or/not``, ``min/max/abs`` — and only such a checked tree is compiled and run,
with no builtins.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
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


@functools.lru_cache(maxsize=1024)
def names(text: str) -> frozenset[str]:
    """The free variable names `text` uses (function names and true/false excluded)."""
    tree = parse(text)
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return frozenset(
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and id(n) not in funcs and n.id not in _CONSTS
    )


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> CodeType:
    return compile(ast.Expression(parse(text)), "<expr>", "eval")


_GLOBALS: dict[str, Any] = {"__builtins__": {}, **_FUNCS, **_CONSTS}


def evaluate(text: str, env: Mapping[str, int | bool]) -> int | bool:
    """Evaluate `text` with variables from `env`; a missing name raises ValueError.

    The whitelisted tree is compiled once and run with no builtins but min/max/abs: only
    arithmetic, comparisons and boolean logic over `env` can execute."""
    try:
        value = eval(_compiled(text), _GLOBALS, env)  # a whitelisted tree, no builtins
    except TypeError as exc:
        raise ValueError(f"{exc} in expression {text!r}") from None
    except NameError as exc:
        raise ValueError(f"unknown name {exc.name!r} in expression {text!r}") from None
    except ZeroDivisionError:
        raise ValueError(f"division by zero in expression {text!r}") from None
    if not isinstance(value, int):
        raise ValueError(f"expression {text!r} gives {type(value).__name__}, not a number")
    return value
