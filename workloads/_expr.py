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


MAX_CHARS = 1000  # an expression's length at most: a predicate, not a program
MAX_DEPTH = 100  # nesting at most (parsing, compiling and running recurse in C)
_SHOWN = 60  # characters of an expression quoted in an error


def shown(text: str) -> str:
    """The expression as an error quotes it: short enough for one line."""
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


@functools.lru_cache(maxsize=1024)
def parse(text: str) -> ast.expr:
    """Parse and whitelist-check `text`; raises ValueError naming the offending construct.
    Bounded in size and depth, so that no expression can exhaust the interpreter's stack."""
    if len(text) > MAX_CHARS:
        raise ValueError(
            f"expression {shown(text)} is too long ({len(text):,} characters, at most "
            f"{MAX_CHARS:,})"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"cannot parse expression {shown(text)}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"expression {shown(text)} is nested too deeply") from None
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(
                f"expression {shown(text)} is nested too deeply (at most {MAX_DEPTH} levels)"
            )
        _check_node(node, text)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree.body


def check_divisors(text: str) -> None:
    """Refuse `//` and `%` by anything but a non-zero integer constant: a grade's counts are
    0 in some round, so ``winners // eexist`` would fail in the middle of a run."""
    for node in ast.walk(parse(text)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.FloorDiv, ast.Mod)):
            right = node.right
            value = right.value if isinstance(right, ast.Constant) else None
            if isinstance(right, ast.UnaryOp) and isinstance(right.operand, ast.Constant):
                value = right.operand.value
            if not isinstance(value, int) or isinstance(value, bool) or value == 0:
                raise ValueError(
                    f"division by something that may be zero in expression {shown(text)} "
                    "(divide only by a non-zero number)"
                )


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
        raise ValueError(f"{type(node).__name__} not allowed in expression {shown(text)}")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int):
        raise ValueError(f"only integer constants allowed in expression {shown(text)}")
    if isinstance(node, ast.Call) and (
        not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords
    ):
        raise ValueError(f"only min(), max(), abs() may be called in expression {shown(text)}")


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
        raise ValueError(f"{exc} in expression {shown(text)}") from None
    except NameError as exc:
        raise ValueError(f"unknown name {exc.name!r} in expression {shown(text)}") from None
    except ZeroDivisionError:
        raise ValueError(f"division by zero in expression {shown(text)}") from None
    except (RecursionError, MemoryError, OverflowError):
        raise ValueError(f"expression {shown(text)} cannot be evaluated (too big)") from None
    if not isinstance(value, int):
        raise ValueError(f"expression {shown(text)} gives {type(value).__name__}, not a number")
    return value
