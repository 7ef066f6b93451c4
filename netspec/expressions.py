"""The spec language's expressions: ``out_channels: =planes * expansion``.

A value written as a string starting with ``=`` is an expression. It is parsed with
Python's ``ast`` and evaluated by a small interpreter that knows arithmetic, comparisons,
``a if c else b``, lists, indexing and a fixed set of functions — never ``eval``, no
attribute access, no names outside the scope, and bounded sizes, so a hostile spec can
neither run code nor make the evaluator allocate or loop without bound.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

MARK = "="
MAX_TEXT = 1000  # characters in one expression
MAX_NODES = 200  # syntax nodes in one expression
MAX_INT = 10**18  # any integer result beyond ±this is refused
MAX_SEQUENCE = 10_000  # items in a list, characters in a string
MAX_VALUE_SIZE = 100_000  # items and characters in a whole (nested) list
SHAPE_FUNCTIONS = ("shape", "channels", "spatial")


REPETITION_NAMES = {  # names only a repetition defines: where they are missing, say where they exist
    "index": "`index` exists only in a repeated item or group (0, 1, …); ",
    "outer_index": "`outer_index` exists only in a repetition inside another (the enclosing one's index); ",
}


class ExprError(Exception):
    """An expression that cannot be evaluated; ``hint`` says what to change."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARK) and len(value) > 1


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10 % down (MobileNet's rule)."""
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 1:
        raise ExprError(f"make_divisible: divisor must be a positive integer, got {divisor!r}")
    floor_value = divisor if min_value is None else min_value
    rounded = max(floor_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


MAX_ROUND_DIGITS = 400  # beyond ±400 digits any value netspec allows is 0 or unchanged


def _round(value, digits=None):
    """``round`` with its digits bounded: Python computes 10**-digits, so -10**18 never returns."""
    if digits is None:
        return round(value)
    if not isinstance(digits, int) or isinstance(digits, bool) or abs(digits) > MAX_ROUND_DIGITS:
        raise ExprError(f"round(): digits must be an integer from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return round(value, digits)


def _extreme(pick):
    def fn(*args):
        items = list(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not items:
            raise ExprError(f"{pick.__name__}() needs at least one value")
        return pick(items)

    fn.__name__ = pick.__name__
    return fn


FUNCTIONS: dict[str, Callable] = {
    "min": _extreme(min),
    "max": _extreme(max),
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "int": int,
    "float": float,
    "str": str,
    "len": len,
    "sum": sum,
    "make_divisible": make_divisible,
}
"""Every function an expression may call, besides shape(), channels() and spatial()."""

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(type(value), "null")


def _checked(value: Any, made: bool = True) -> Any:
    """Refuse results that could grow without bound: huge ints, non-finite floats, long lists,
    and lists of lists whose whole is large (``[p, p, p]`` of a shared ``p`` nests cheaply, but
    printing or comparing it walks every copy). A value not ``made`` here (a name's, a literal)
    was measured where it was made, or is YAML's (at most 100,000 values): not walked again."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        digits = int(value.bit_length() * math.log10(2))  # huge ints do not convert to float or str
        raise ExprError(f"integer result out of range (|value| > 10**18): about 10**{digits}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError(f"non-finite result {value}")
    if isinstance(value, (str, list)) and len(value) > MAX_SEQUENCE:
        raise ExprError(f"result longer than {MAX_SEQUENCE} items")
    if made and isinstance(value, list) and value_size(value) > MAX_VALUE_SIZE:
        raise ExprError(
            f"result too large: more than {MAX_VALUE_SIZE:,} items and characters in all "
            "(a nested list counts each time it appears)"
        )
    if value is not None and not isinstance(value, (bool, int, float, str, list)):
        raise ExprError(f"result of type {type(value).__name__} is not a number, string, boolean or list")
    return value


def value_size(value: Any, sizes: dict[int, int] | None = None) -> int:
    """Items and characters in ``value``, counting a shared sublist each time it appears, in time
    linear in the distinct lists (each one's size is computed once)."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, list):
        return 1
    sizes = {} if sizes is None else sizes
    known = sizes.get(id(value))
    if known is None:
        known = sizes[id(value)] = len(value) + sum(
            value_size(item, sizes) for item in value if isinstance(item, (list, str))
        )
    return known


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> ast.expr:
    """The syntax tree of one expression (cached: a block repeated N times parses it once)."""
    source = text[len(MARK) :].strip() if text.startswith(MARK) else text.strip()
    if len(source) > MAX_TEXT:
        raise ExprError(f"expression longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except (RecursionError, MemoryError):
        raise ExprError("expression nested too deeply") from None
    except SyntaxError as exc:
        raise ExprError(
            f"invalid expression {source!r}: {exc.msg}",
            "expressions use Python syntax: `=planes * 4`, `=max(8, c // 2)`, `=a if b else c`; "
            "quote a flow-style value that holds ',' '[' or '{'",
        ) from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExprError(f"expression has more than {MAX_NODES} parts")
    return tree.body


_NO_COPY = (ast.Name, ast.Constant)  # a name's value or a literal: nothing is made


class Budget:
    """The list items and characters that the expressions of one spec make, in all: each list or
    string a step of an expression builds counts (each is bounded, but a repeated block can make
    many)."""

    def __init__(self, limit: int):
        self.limit, self.left = limit, limit

    def spend(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise ExprError(
                f"the spec's expressions make over {self.limit:,} list items and characters in all",
                "large lists computed in a repeated block? pass them from params: instead",
            )


class Evaluator:
    """Evaluates one expression against a scope.

    ``scope`` maps names to values, or to zero-argument callables for values that cost
    something to compute (the block's input shape), computed only when used.
    ``shape_of(name)`` answers ``shape(name)``; its argument is a layer name, not a value.
    """

    def __init__(
        self,
        scope: Mapping[str, Any],
        shape_of: Callable[[str], tuple[int, ...]] | None = None,
        budget: Budget | None = None,
    ):
        self.scope = scope
        self.shape_of = shape_of
        self.budget = budget

    def evaluate(self, text: str) -> Any:
        return self._eval(parse(text))  # each step's result is checked, the last one too

    def _eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExprError(
                f"{type(node).__name__} is not allowed in an expression",
                "allowed: numbers, strings, names, + - * / // % **, comparisons, and/or/not, "
                "x if c else y, [lists], x[i], and the functions "
                + ", ".join([*FUNCTIONS, *SHAPE_FUNCTIONS]),
            )
        made = not isinstance(node, _NO_COPY)
        result = _checked(method(node), made)
        if made and self.budget is not None and isinstance(result, (list, str)):
            self.budget.spend(len(result))
        return result

    def _Constant(self, node: ast.Constant) -> Any:
        if node.value is None or isinstance(node.value, (bool, int, float, str)):
            return node.value
        raise ExprError(f"constant {node.value!r} is not allowed")

    def _Name(self, node: ast.Name) -> Any:
        if node.id in ("true", "false", "null"):  # YAML spellings
            return {"true": True, "false": False, "null": None}[node.id]
        if node.id not in self.scope:
            import difflib

            close = difflib.get_close_matches(node.id, list(self.scope), n=1)
            known = ", ".join(sorted(self.scope)) or "none"
            raise ExprError(
                f"unknown name {node.id!r}",
                REPETITION_NAMES.get(node.id, "")
                + (f"did you mean {close[0]!r}? " if close else "")
                + f"names in scope here: {known}",
            )
        value = self.scope[node.id]
        return value() if callable(value) else value

    def _List(self, node: ast.List) -> list:
        return [self._eval(item) for item in node.elts]

    _Tuple = _List

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Invert):  # a bit operator, like & and |: not in the language
            raise ExprError("operator ~ is not allowed")
        value = self._eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not _number(value):
            raise ExprError(f"cannot negate a {_kind(value)}")
        return -value if isinstance(node.op, ast.USub) else +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        op = type(node.op)
        if op not in _BINARY:
            raise ExprError(f"operator {type(node.op).__name__} is not allowed")
        left, right = self._eval(node.left), self._eval(node.right)
        symbol = _SYMBOL[op]
        joinable = op is ast.Add and type(left) is type(right) and isinstance(left, (str, list))
        if not joinable and not (_number(left) and _number(right)):
            raise ExprError(f"cannot compute {_kind(left)} {symbol} {_kind(right)}")
        if op is ast.Pow and (abs(right) > 64 or (abs(left) > 1 and abs(right) * math.log2(abs(left)) > 62)):
            raise ExprError(f"power {left} ** {right} is too large")
        if joinable and len(left) + len(right) > MAX_SEQUENCE:
            raise ExprError(f"result longer than {MAX_SEQUENCE} items")
        try:
            return _BINARY[op](left, right)
        except ZeroDivisionError:
            raise ExprError(f"division by zero in {left} {symbol} {right}") from None
        except OverflowError:
            raise ExprError(f"{left} {symbol} {right} overflows") from None

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value = self._eval(node.values[0])
        for item in node.values[1:]:
            if (isinstance(node.op, ast.And) and not value) or (isinstance(node.op, ast.Or) and value):
                return value
            value = self._eval(item)
        return value

    def _Compare(self, node: ast.Compare) -> bool:
        left = self._eval(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._eval(right_node)
            try:
                ok = _COMPARE[type(op)](left, right)
            except TypeError:
                raise ExprError(f"cannot compare {_kind(left)} with {_kind(right)}") from None
            if not ok:
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self._eval(node.body) if self._eval(node.test) else self._eval(node.orelse)

    def _Subscript(self, node: ast.Subscript) -> Any:
        value = self._eval(node.value)
        if not isinstance(value, (list, str)):
            raise ExprError(f"cannot index a {_kind(value)}")
        if isinstance(node.slice, ast.Slice):
            bounds = [
                None if part is None else self._eval(part)
                for part in (node.slice.lower, node.slice.upper, node.slice.step)
            ]
            if any(b is not None and (not isinstance(b, int) or isinstance(b, bool)) for b in bounds):
                raise ExprError("slice bounds must be integers")
            if bounds[2] == 0:
                raise ExprError("slice step cannot be zero")
            return value[slice(*bounds)]
        index = self._eval(node.slice)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ExprError(f"index must be an integer, got {_kind(index)}")
        if not -len(value) <= index < len(value):
            raise ExprError(f"index {index} out of range for a {_kind(value)} of length {len(value)}")
        return value[index]

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name):
            raise ExprError("only plain function names can be called, e.g. max(a, b)")
        name = node.func.id
        if node.keywords:
            raise ExprError(f"{name}(): keyword arguments are not supported")
        if name in SHAPE_FUNCTIONS:
            return self._shape_call(name, node)
        if name not in FUNCTIONS:
            import difflib

            close = difflib.get_close_matches(name, [*FUNCTIONS, *SHAPE_FUNCTIONS], n=1)
            raise ExprError(
                f"unknown function {name!r}",
                (f"did you mean {close[0]!r}? " if close else "")
                + "functions: "
                + ", ".join([*FUNCTIONS, *SHAPE_FUNCTIONS]),
            )
        args = [self._eval(arg) for arg in node.args]
        if name in ("floor", "ceil", "round", "abs", "int") and not (args and _number(args[0])):
            raise ExprError(f"{name}() needs a number, got {', '.join(map(_kind, args)) or 'nothing'}")
        if name in ("len", "sum") and not (len(args) == 1 and isinstance(args[0], (list, str))):
            raise ExprError(f"{name}() needs one list")
        try:
            return FUNCTIONS[name](*args)
        except ExprError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise ExprError(f"{name}(): {exc}") from None

    def _shape_call(self, name: str, node: ast.Call) -> Any:
        """shape(x), channels(x), spatial(x): x names a layer (or an input), it is not evaluated."""
        if len(node.args) != 1:
            raise ExprError(f"{name}() takes one layer name, e.g. {name}(skip3)")
        arg = node.args[0]
        if isinstance(arg, ast.Name):
            target = arg.id
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            target = arg.value
        else:
            target = ast.unparse(arg)  # a dotted path: enc1.pool
            if not all(part.isidentifier() or part.isdigit() for part in target.split(".")):
                quoted = f"{name}('{target.replace(' ', '')}')"
                hint = f"a name with '-' is quoted: {quoted}" if "-" in target else None
                raise ExprError(f"{name}() takes a layer name, got {target!r}", hint)
        if self.shape_of is None:
            raise ExprError(f"{name}() cannot be used here: only layer parameters know shapes")
        shape = list(self.shape_of(target))
        return shape if name == "shape" else shape[0] if name == "channels" else shape[1:]
