"""The immutable expression tree and its shapes.

Owns the node types every other stage shares (parser output, differentials, simplified
results), symbolic dimensions, and the shape rule of each node.  Knows nothing of LaTeX text,
NumPy, differentiation or documents.

Conventions
-----------
* A dimension (:data:`Dim`) is a sorted tuple of size names: ``()`` is 1, ``("n",)`` is n,
  ``("m", "n")`` is mn (the size of vec of an m x n matrix).
* A shape is ``(rows, cols)``.  Scalars are 1 x 1, vectors are columns (n x 1).
* In a :class:`Mul`, every 1 x 1 factor acts as a scalar (it commutes), so ``(x^T A x) I`` and
  ``x (a^T b)`` are well typed.
* Trees are frozen dataclasses; rewriting builds new trees via :meth:`Expr.children` and
  :meth:`Expr.with_children`.
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from fractions import Fraction
from operator import attrgetter
from typing import Callable, Iterator, Tuple

Dim = Tuple[str, ...]
Shape = Tuple[Dim, Dim]
ONE: Dim = ()
SCALAR: Shape = (ONE, ONE)
#: Placeholder size the parser gives to ``I``, ``\mathbf{1}`` and ``0``; shape inference
#: replaces it with a real size.
UNKNOWN: Dim = ("?",)


def dim(*names: str) -> Dim:
    """A dimension from size names: ``dim()`` is 1, ``dim("m", "n")`` is mn."""
    return tuple(sorted(n for n in names if n))


def dim_mul(a: Dim, b: Dim) -> Dim:
    return tuple(sorted(a + b))


class ShapeError(ValueError):
    """Raised by :func:`Expr.shape` computations on ill-typed trees (an engine bug or a clash)."""


class _KeptShape:
    """A node's shape, computed on first use and kept in the node's ``__dict__`` under
    ``shape`` (trees are immutable): later reads are plain attribute reads, with no Python
    call (a non-data descriptor, so the instance's value takes precedence).  ``shape`` and
    ``is_scalar`` are read some hundred times per derivation."""

    def __get__(self, node, cls=None):
        if node is None:
            return self
        value = node._shape_()  # (an ill-typed node raises ShapeError; nothing is kept)
        kept = node.__dict__
        kept["shape"] = value
        kept["is_scalar"] = value == SCALAR  # (asked of most nodes whose shape is: kept now)
        return value


class _KeptIsScalar:
    """Whether a node is 1 x 1, kept as :class:`_KeptShape` keeps the shape (one descriptor
    per property rather than a shared one calling a function: the call was a frame per node)."""

    def __get__(self, node, cls=None):
        if node is None:
            return self
        value = node.shape == SCALAR
        node.__dict__["is_scalar"] = value
        return value


class Expr:
    """Base of all nodes."""

    __slots__ = ()

    #: What a node keeps of itself once computed (its hash, its node list), read as plain
    #: attributes: the instance's ``__dict__`` holds the value after the first computation;
    #: before it, these class-level ``None`` are read (no ``__dict__`` lookup, no ``get`` call).
    _hash = None
    _nodes = None
    #: whether the tree holds a differential ``dX`` (kept by :func:`calculus.identify.has_d`)
    _has_d = None
    #: whether the node has no children (set on each node class below, from its ``children``)
    _is_leaf = False

    # --- structure -----------------------------------------------------------------------
    def children(self) -> tuple["Expr", ...]:
        return ()

    def with_children(self, children: tuple["Expr", ...]) -> "Expr":
        return self

    def walk(self) -> Iterator["Expr"]:
        """Pre-order traversal (the node list is kept on the node: trees are immutable)."""
        return iter(self._nodes or self.nodes())  # (kept: no call)

    def nodes(self) -> tuple["Expr", ...]:
        """Every node of the tree, pre-order, computed once per node."""
        got = self._nodes
        if got is None:
            kids = self.children()
            if not kids:
                got = (self,)
            else:
                acc = [self]
                for c in kids:
                    sub = c._nodes
                    if sub is None:
                        # (a leaf's list is itself, made here: no calls of its nodes, children)
                        sub = (c,) if c._is_leaf else c.nodes()
                    acc.extend(sub)
                got = tuple(acc)
            object.__setattr__(self, "_nodes", got)
        return got

    def map(self, fn: Callable[["Expr"], "Expr"]) -> "Expr":
        """Bottom-up rewrite: ``fn`` is applied to each node after its children."""
        if self._is_leaf:
            return fn(self)  # (no children to ask for)
        kids = self.children()
        node = self
        if kids:
            new = []
            changed = False
            for k in kids:  # (a loop, not a comprehension: that is a frame of its own)
                a = k.map(fn)
                new.append(a)
                if a is not k:  # (a child changed: rebuilt, else the node itself)
                    changed = True
            if changed:
                node = self.with_children(tuple(new))
        return fn(node)

    def contains(self, pred: Callable[["Expr"], bool]) -> bool:
        return any(pred(n) for n in self.walk())

    def depends_on(self, sym: "Symbol") -> bool:
        return any(n == sym for n in self.walk())

    # --- shape ---------------------------------------------------------------------------
    shape = _KeptShape()

    def _shape_(self) -> Shape:  # pragma: no cover - every node overrides
        raise NotImplementedError

    is_scalar = _KeptIsScalar()

    @property
    def is_vector(self) -> bool:
        r, c = self.shape
        return c == ONE and r != ONE

    @property
    def is_square(self) -> bool:
        r, c = self.shape
        return r == c


# --------------------------------------------------------------------------------------------
# Leaves
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=True)
class Symbol(Expr):
    """A named quantity.  ``name`` is plain (``W_1``, ``theta``); ``latex`` is how it prints
    (``\\mathbf{W}_1``, ``\\theta``); ``kind`` is scalar, vector or matrix."""

    name: str
    rows: Dim = ONE
    cols: Dim = ONE
    kind: str = "scalar"
    latex: str = ""
    symmetric: bool = False

    def _shape_(self) -> Shape:
        return (self.rows, self.cols)


@dataclass(frozen=True, eq=True, init=False)
class Const(Expr):
    """An exact rational number (a scalar)."""

    value: Fraction

    def __init__(self, value):
        # (the value made a Fraction here, not in a __post_init__: a call less per constant)
        self.__dict__["value"] = value if isinstance(value, Fraction) else Fraction(value)

    # (always 1 x 1: class attributes, read with no computation and nothing kept per node)
    shape = SCALAR
    is_scalar = True

    def _shape_(self) -> Shape:
        return SCALAR


#: The coefficient 1 of a product, one shared object (Fractions are immutable, and making one
#: costs more than the rest of a small product's work): the products' coefficients start from it.
COEF_ONE = Fraction(1)


@dataclass(frozen=True, eq=True)
class Identity(Expr):
    """The n x n identity."""

    n: Dim

    def _shape_(self) -> Shape:
        return (self.n, self.n)


@dataclass(frozen=True, eq=True)
class Zero(Expr):
    """The zero matrix of a given shape."""

    rows: Dim
    cols: Dim

    def _shape_(self) -> Shape:
        return (self.rows, self.cols)


@dataclass(frozen=True, eq=True)
class Ones(Expr):
    """The n x 1 vector of ones, ``\\mathbf{1}``."""

    n: Dim

    def _shape_(self) -> Shape:
        return (self.n, ONE)


@dataclass(frozen=True, eq=True)
class Commutation(Expr):
    """The commutation matrix K_{mn}: K vec(A) = vec(A^T) for an m x n matrix A."""

    m: Dim
    n: Dim

    def _shape_(self) -> Shape:
        d = dim_mul(self.m, self.n)
        return (d, d)


@dataclass(frozen=True, eq=True)
class Differential(Expr):
    """The differential ``dX`` of a variable."""

    of: Symbol

    def _shape_(self) -> Shape:
        return self.of.shape


# --------------------------------------------------------------------------------------------
# n-ary operators
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=True)
class _Nary(Expr):
    args: tuple

    def children(self):
        return self.args

    def with_children(self, children):
        return type(self)(tuple(children))


class Add(_Nary):
    """Sum of terms of one shape (a 1 x 1 term may only join other 1 x 1 terms)."""

    def _shape_(self) -> Shape:
        shapes = {a.shape for a in self.args}
        if len(shapes) != 1:
            raise ShapeError("sum of terms of different shapes: " + ", ".join(map(fmt_shape, shapes)))
        return next(iter(shapes))


class Mul(_Nary):
    """Matrix product; 1 x 1 factors act as scalars."""

    def _shape_(self) -> Shape:
        return chain_shape(self.args)


class Hadamard(_Nary):
    """Elementwise product (``\\odot``)."""

    def _shape_(self) -> Shape:
        shapes = {a.shape for a in self.args}
        if len(shapes) != 1:
            raise ShapeError("elementwise product of different shapes: " + ", ".join(map(fmt_shape, shapes)))
        return next(iter(shapes))


class Kron(_Nary):
    """Kronecker product (``\\otimes``)."""

    def _shape_(self) -> Shape:
        r, c = ONE, ONE
        for a in self.args:
            ar, ac = a.shape
            r, c = dim_mul(r, ar), dim_mul(c, ac)
        return (r, c)


# --------------------------------------------------------------------------------------------
# Unary and binary operators
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=True)
class _Unary(Expr):
    arg: Expr

    def children(self):
        return (self.arg,)

    def with_children(self, children):
        return type(self)(children[0])


class Transpose(_Unary):
    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        return (c, r)


class Inverse(_Unary):
    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        if r != c:
            raise ShapeError(f"inverse of a non-square {fmt_shape((r, c))} matrix")
        return (r, c)


class Trace(_Unary):
    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        if r != c:
            raise ShapeError(f"trace of a non-square {fmt_shape((r, c))} matrix")
        return SCALAR


class Det(_Unary):
    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        if r != c:
            raise ShapeError(f"determinant of a non-square {fmt_shape((r, c))} matrix")
        return SCALAR


class Softmax(_Unary):
    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        if c != ONE:
            raise ShapeError(f"softmax of a {fmt_shape((r, c))} matrix (a vector is needed)")
        return (r, c)


class Diag(_Unary):
    """Vector to diagonal matrix."""

    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        if c != ONE:
            raise ShapeError(f"diag of a {fmt_shape((r, c))} matrix where a vector was expected")
        return (r, r)


class DiagPart(_Unary):
    """Diagonal of a square matrix, as a vector."""

    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        if r != c:
            raise ShapeError(f"diagonal of a non-square {fmt_shape((r, c))} matrix")
        return (r, ONE)


class Vec(_Unary):
    """Column-major vectorisation."""

    def _shape_(self) -> Shape:
        r, c = self.arg.shape
        return (dim_mul(r, c), ONE)


class Sum(_Unary):
    """Sum of all entries."""

    shape = SCALAR  # (as Const's)
    is_scalar = True

    def _shape_(self) -> Shape:
        return SCALAR


@dataclass(frozen=True, eq=True)
class Norm(Expr):
    """``kind`` is ``"2"`` (Euclidean norm of a vector), ``"1"`` (sum of the absolute values
    of a vector's entries) or ``"F"`` (Frobenius norm)."""

    arg: Expr
    kind: str = "2"

    def children(self):
        return (self.arg,)

    def with_children(self, children):
        return Norm(children[0], self.kind)

    shape = SCALAR  # (as Const's)
    is_scalar = True

    def _shape_(self) -> Shape:
        return SCALAR


#: Elementwise functions: name -> description.  ``dsigmoid`` is sigma', ``sech2`` is sech^2.
ELEMENTWISE = ("exp", "log", "sin", "cos", "tanh", "sinh", "cosh", "tan", "arctan", "sqrt",
               "sigmoid", "dsigmoid", "sech2", "abs", "sign")


@dataclass(frozen=True, eq=True)
class Func(Expr):
    """An elementwise function (scalars, vectors, matrices alike)."""

    name: str
    arg: Expr

    def children(self):
        return (self.arg,)

    def with_children(self, children):
        return Func(self.name, children[0])

    def _shape_(self) -> Shape:
        return self.arg.shape


@dataclass(frozen=True, eq=True)
class Power(Expr):
    """``base ** exponent``: a real power for a scalar base, a matrix power for a square one
    (exponent a whole number or a scalar symbol)."""

    base: Expr
    exponent: Expr

    def children(self):
        return (self.base, self.exponent)

    def with_children(self, children):
        return Power(children[0], children[1])

    def _shape_(self) -> Shape:
        r, c = self.base.shape
        if r != c:
            raise ShapeError(f"power of a non-square {fmt_shape((r, c))} matrix")
        if self.exponent.shape != SCALAR:
            raise ShapeError("the exponent of a power must be a scalar")
        return (r, c)


@dataclass(frozen=True, eq=True)
class HadamardDiv(Expr):
    """Elementwise division ``num \\oslash den`` (same shapes)."""

    num: Expr
    den: Expr

    def children(self):
        return (self.num, self.den)

    def with_children(self, children):
        return HadamardDiv(children[0], children[1])

    def _shape_(self) -> Shape:
        if self.num.shape != self.den.shape:
            raise ShapeError("elementwise division of different shapes")
        return self.num.shape


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def fmt_dim(d: Dim) -> str:
    return "".join(d) if d else "1"


def fmt_shape(s: Shape) -> str:
    return f"{fmt_dim(s[0])}\u00d7{fmt_dim(s[1])}"


def chain_shape(factors) -> Shape:
    """The shape of the matrix product of the nodes ``factors``, where 1 x 1 factors act as
    scalars: each factor's shape read as the walk along the chain reaches it (one loop, with
    no call per factor: a product's shape is asked of every product built)."""
    cur: Shape | None = None
    for f in factors:
        s = f.shape
        if s == SCALAR:
            continue
        if cur is None:
            cur = s
            continue
        if cur[1] != s[0]:
            raise ShapeError(f"product of {fmt_shape(cur)} and {fmt_shape(s)}: inner sizes differ")
        cur = (cur[0], s[1])
    return cur if cur is not None else SCALAR


def symbols(e: Expr) -> list[Symbol]:
    """Distinct symbols of ``e`` in order of first appearance."""
    seen: dict[Symbol, None] = {}
    for n in e.walk():
        if isinstance(n, Symbol):
            seen.setdefault(n, None)
        elif isinstance(n, Differential):
            seen.setdefault(n.of, None)
    return list(seen)


def const(v) -> Const:
    return Const(Fraction(v))


ZERO_C = Const(Fraction(0))
ONE_C = Const(Fraction(1))
MINUS_ONE = Const(Fraction(-1))


@dataclass(frozen=True, eq=True)
class DifferentialOf(Expr):
    """The differential ``d(U)`` of a compound expression, not yet expanded (derivation steps
    show it before the rule for ``U`` is applied)."""

    arg: Expr

    def children(self):
        return (self.arg,)

    def with_children(self, children):
        return DifferentialOf(children[0])

    def _shape_(self) -> Shape:
        return self.arg.shape


def _cache_hashes() -> None:
    """Frozen dataclasses recompute their hash over the whole subtree on every call; trees are
    immutable, so each node keeps its hash after the first computation.  The value is the
    dataclass's own, ``hash((field, ...))``, computed in the kept hash itself (the dataclass's
    function called from it was a second frame per node)."""
    def kept(names):
        if len(names) == 1:
            name = names[0]

            def __hash__(self):
                h = self._hash  # (the class's None until the first computation)
                if h is None:
                    h = hash((getattr(self, name),))
                    self.__dict__["_hash"] = h
                return h
        else:
            fields_of = attrgetter(*names)  # (a tuple of the fields, in their order)

            def __hash__(self):
                h = self._hash
                if h is None:
                    h = hash(fields_of(self))
                    self.__dict__["_hash"] = h
                return h
        return __hash__

    for cls in _node_classes():
        if "__hash__" in cls.__dict__ and cls.__dict__["__hash__"] is not None:
            cls.__hash__ = kept(tuple(f.name for f in fields(cls)))


def _plain_inits() -> None:
    """A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, a
    call per field (a symbol has six); the nodes' own write the fields into the node's
    ``__dict__``: the same signature, defaults and values, built as the dataclass builds it."""
    for cls in _node_classes():
        if "__init__" not in cls.__dict__ or not cls.__dataclass_params__.init:
            continue  # (an inherited __init__, or a class's own: Const)
        names = [f.name for f in fields(cls)]
        defaults = {"_default_" + f.name: f.default
                    for f in fields(cls) if f.default is not MISSING}
        params = ", ".join(n + ("=_default_" + n if "_default_" + n in defaults else "")
                           for n in names)
        body = "".join(f"\n    fields[{n!r}] = {n}" for n in names)
        namespace = dict(defaults)
        exec(f"def __init__(self, {params}):\n    fields = self.__dict__{body}\n", namespace)
        init = namespace["__init__"]
        init.__qualname__ = cls.__qualname__ + ".__init__"
        cls.__init__ = init


def _node_classes() -> list:
    """Every node class (the subclasses of :class:`Expr`, at any depth)."""
    found, stack = [], list(Expr.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def _mark_leaves() -> None:
    """Set ``_is_leaf`` on the node classes whose nodes have no children (:meth:`Expr.nodes`
    reads it rather than calling ``children`` on each leaf)."""
    for cls in _node_classes():
        cls._is_leaf = cls.children is Expr.children


_cache_hashes()
_plain_inits()
_mark_leaves()
