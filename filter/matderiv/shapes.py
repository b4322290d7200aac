r"""Kinds and symbolic sizes of a parsed expression (SPEC 1.2).

Owns the typing of a :class:`~matderiv.parse.Parsed` tree: which symbols are scalars, vectors
and (symmetric) matrices, the symbolic size names (``n``, ``m``, ...), and the resolution of
the parser's placeholders.  Knows nothing of LaTeX text beyond the source spans used in
error messages, and nothing of differentiation.

Rules
-----
* Kind of a symbol: the parser's default from its letter, overridden by the declarations;
  ``symmetric`` implies a square matrix.
* Sizes are solved by union-find over size variables.  A scalar is 1x1, a vector n x 1, a
  matrix r x c; vector lengths and matrix sizes are never 1, so every size is either 1 or a
  named size, and ``A x + B`` is a clash.
* Products: factors whose shape is 1x1 act as scalars; the others chain (``cols = rows``).
  When a chain collapses to 1x1 and more factors follow (``x^T y z``) the scalar prefix is
  grouped: ``(x^T y) z``.
* A number in a sum of vectors is that multiple of the ones vector (``1 - \sigma(x)``); a
  ``0`` is the zero of the sum's shape; a non-zero number in a sum of matrices is an error.
* Placeholders: ``Func("bars", X)`` becomes ``Det`` (square matrix) or ``abs`` (scalar);
  ``Func("diag", .)`` becomes ``Diag`` (vector) or ``DiagPart`` (square matrix); an
  unsubscripted norm (or ``_2``) of a matrix is read as the Frobenius norm — the spectral
  norm is not supported; ``\|t\|`` of a scalar is ``abs``; the inverse of a scalar is the
  power -1; a power of a function value of a vector (``\tanh^2(x)``) is elementwise
  (a Hadamard product of copies).
* A determinant or inverse of a product keeps its factors rectangular (``\det(A X B)`` with
  A p x m, X m x n, B n x p); a rank-one product (a column times a row) is an error.
* Naming: the variable's sizes first (vector: ``n``; matrix: ``m`` x ``n``; square matrix:
  ``n``), then the other sizes in order of first appearance from ``n, m, p, q, r, s, k, l,
  ...``, skipping letters taken by sizes or by lowercase symbol names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

from .calculus.build import ones
from .deadline import tick
from .errors import MatDerivError, NestedTooDeeplyError, Span, UnsupportedError
from .expr import (ONE, Add, Commutation, Const, Det, Diag, DiagPart, Differential, Expr, Func,
                   Hadamard, HadamardDiv, Identity, Inverse, Kron, Mul, Norm, Ones, Power,
                   ShapeError, Softmax, Sum, Symbol, Trace, Transpose, Vec, Zero,
                   symbols as symbols_of)
from .parse import Parsed, identity_size_letters, normalize_name, symbol_latex
from .parse.parser import GREEK

__all__ = ["Typed", "infer", "SIZE_LETTERS"]

SIZE_LETTERS = ("n", "m", "p", "q", "r", "s", "k", "l", "t", "u", "v", "w", "a", "b", "c", "d",
                "f", "g", "h", "i", "j")


@dataclass(frozen=True)
class Typed:
    """A typed expression.

    ``tree``: every Symbol / Identity / Ones / Zero has real sizes, placeholders resolved.
    ``variables``: the typed Symbol of each entry of ``wrt`` (same order and length; a variable
    absent from the expression still gets its kind and fresh sizes).
    ``symbols``: all distinct symbols of ``tree`` in order of first appearance, followed by
    the absent variables.
    ``spans``: ``id(node)`` of nodes of ``tree`` -> source span (where known).
    """

    tree: Expr
    variables: tuple
    symbols: tuple
    source: str = ""
    spans: dict = field(default_factory=dict, compare=False, repr=False)


# ------------------------------------------------------------------------------------------
# Union-find over size variables.  Variable 0 is the size 1; every other variable is a
# non-unit size (a vector length or a matrix size).
# ------------------------------------------------------------------------------------------
class _UF:
    def __init__(self):
        self.parent = [0]

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        p = self.parent
        root = a
        while p[root] != root:
            root = p[root]
        while p[a] != root:
            p[a], a = root, p[a]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if ra == 0 or rb == 0:
            return False  # a non-unit size can never become 1
        if ra < rb:
            ra, rb = rb, ra
        self.parent[ra] = rb  # keep the older root
        return True


_KIND_WORD = {"scalar": "a scalar", "vector": "a vector", "row": "a row vector",
              "matrix": "a matrix"}


class _Infer:
    def __init__(self, parsed: Parsed, wrt, kinds, symmetric):
        self.p = parsed
        self.src = parsed.source
        self.uf = _UF()
        self.kinds = kinds            # name -> kind
        self.declared = set(kinds)    # the names declared (before variables get their kinds)
        self.symmetric = symmetric    # set of names
        self.symdims: dict[str, tuple] = {}   # name -> (rows, cols) var tuples
        self.shape: dict[int, tuple] = {}     # id(node) -> (rows, cols) var tuples
        self.info: dict[int, object] = {}     # id(node) -> resolution info
        self.wrt = wrt
        self._names = None
        #: sizes that are products of others (the a of a^T vec(X) has size mn): root -> factors
        self.prod: dict[int, tuple] = {}
        #: letters written as a size (I_n) and used as a scalar symbol too (1/n): one number
        self.size_letter_scalars: set = set()
        #: undeclared letters that are scalars because they stand in an exponent (X^k); set by
        #: :func:`infer`
        self.exponent_letters: set = set()
        #: id of an identity or ones vector of the tree -> the size letters written on it
        #: (``I_n``: ("n",); set by :func:`infer`, which reads them once)
        self.written_letters: dict[int, tuple] = {}
        #: a size letter written on an identity or a ones vector (I_n, \mathbf{1}_n) -> its size:
        #: every I_n and \mathbf{1}_n of an expression is of that one size
        self.written_sizes: dict[str, int] = {}

    # --- helpers ---------------------------------------------------------------------------
    def _expand(self, v) -> tuple:
        """The unbound size roots whose product ``v`` is (``()`` for 1), fastest first."""
        r = self.uf.find(v)
        if r == 0:
            return ()
        factors = self.prod.get(r)
        if factors is None:
            return (r,)
        return tuple(x for f in factors for x in self._expand(f))

    def canon(self, d: tuple) -> tuple:
        if not self.prod:  # no product sizes: the roots themselves (the common case)
            if not d:
                return ()  # (the size 1: a scalar's, a vector's columns)
            if len(d) == 1:
                return (self.uf.find(d[0]),)  # (one size: its root, never the unit's 0)
            find = self.uf.find
            roots = [r for r in map(find, d) if r]
            if len(roots) > 1:
                roots.sort()
            return tuple(roots)
        return tuple(sorted(x for v in d for x in self._expand(v)))

    def cshape(self, s):
        return self.canon(s[0]), self.canon(s[1])

    def kind_of(self, s) -> str:
        """Scalar, vector, row or matrix, read from which sizes of the shape are 1.  A size is
        1 exactly when it is the empty tuple: every size variable is a non-unit size (only
        the variable 0, which no shape holds, is 1, and :meth:`_UF.union` never merges a
        non-unit size into it), so canonical forms are not needed here."""
        r, c = s
        if not r:
            return "row" if c else "scalar"
        return "matrix" if c else "vector"

    def is_scalar(self, s) -> bool:
        """Whether the shape is 1x1 (see :meth:`kind_of`: no canonical form needed)."""
        return not s[0] and not s[1]

    def dims_for(self, name: str, kind: str, sym: bool):
        if name in self.symdims:
            return self.symdims[name]
        if kind == "scalar":
            d = ((), ())
        elif kind == "vector":
            d = ((self.uf.new(),), ())
        else:
            r = self.uf.new()
            d = ((r,), (r,)) if sym else ((r,), (self.uf.new(),))
        self.symdims[name] = d
        return d

    def text(self, node) -> str:
        t = self.p.text(node)
        return _short(t.strip()) if t else "?"

    def span(self, node):
        return self.p.spans.get(id(node))

    def names(self) -> dict:
        """Provisional or final names of size classes."""
        if self._names is None:
            self._names = _name_classes(self)
        return self._names

    def fmt_dim(self, d) -> str:
        c = self.canon(d)
        if not c:
            return "1"
        names = self.names()
        return "".join(names.get(v, "?") for v in c)

    def fmt_shape(self, s) -> str:
        return f"{self.fmt_dim(s[0])}\u00d7{self.fmt_dim(s[1])}"

    def describe(self, s) -> str:
        return f"{_KIND_WORD[self.kind_of(s)]} ({self.fmt_shape(s)})"

    def left_text(self, first, last) -> tuple[str, int | None]:
        """The source from ``first`` to ``last`` (the left side of a clash) and where it ends,
        taking in the closing brackets it leaves open (a bracket's node spans its inside:
        ``A(x + b)``, not ``A(x + b``); ``("?", None)`` without spans."""
        sp0, spp = self.span(first), self.span(last)
        if not (sp0 and spp):
            return "?", None
        src, end = self.src, spp.end
        depth = sum(src.count(c, sp0.start, end) for c in "([") - \
            sum(src.count(c, sp0.start, end) for c in ")]")
        while depth > 0:
            m = _CLOSER_RE.match(src, end)
            if not m:
                break
            end, depth = m.end(), depth - 1
        start = sp0.start
        while True:  # a bracket around exactly this side: (x + b) + A
            k = len(src[:start].rstrip())
            m = _CLOSER_RE.match(src, end)
            if not (k and src[k - 1] in "([" and m):
                break
            start, end = k - 1, m.end()
            if src[:start].endswith("\\left"):
                start -= len("\\left")
        return src[start:end].strip(), end

    def op_pos(self, left_end: int, right_node) -> tuple[int, int | None]:
        """Position of the operator (or of the right operand) after ``left_end``."""
        sp = self.span(right_node)
        pos = left_end
        while pos < len(self.src) and self.src[pos].isspace():
            pos += 1
        if sp is not None and (pos >= sp.start or pos >= len(self.src)):
            return sp.start, sp.end
        return pos, (sp.end if sp else None)

    def clash(self, whole, left_text, left_shape, right_node, right_shape, left_end, hint,
              verb="but"):
        self._names = None
        pos, end = self.op_pos(left_end, right_node) if left_end is not None else \
            ((self.span(right_node).start, self.span(right_node).end) if self.span(right_node)
             else (None, None))
        if verb == "but":
            msg = (f"size clash in `{self.text(whole)}`: `{_short(left_text)}` is "
                   f"{self.describe(left_shape)} but `{self.text(right_node)}` is "
                   f"{self.describe(right_shape)}")
        else:
            msg = (f"size clash in `{self.text(whole)}`: `{_short(left_text)}` is "
                   f"{self.describe(left_shape)} and `{self.text(right_node)}` is "
                   f"{self.describe(right_shape)}, so they cannot be multiplied")
        return MatDerivError(msg, pos, self._default_kind_hint(whole) or hint, end=end, source=self.src)

    def _default_kind_hint(self, whole) -> str | None:
        """A clash caused by a default kind gets a hint naming the declaration that fixes it."""
        for n in whole.walk():
            if isinstance(n, Symbol) and n.name not in self.declared:
                if n.kind == "scalar" and n.latex.startswith("\\"):
                    return (f"`{n.latex}` is a scalar by default (a plain lowercase Greek letter); "
                            f"if it is a vector, declare vector={{{n.latex}}}")
        return None

    def _ordered(self, d) -> tuple:
        return tuple(x for v in d for x in self._expand(v))

    @staticmethod
    def _bindable(oa, ob) -> bool:
        """A single free size against a product of others (not containing it)."""
        return len(oa) == 1 and len(ob) >= 2 and oa[0] not in ob

    def written_size(self, node) -> int:
        """A new size for an identity or ones vector, or the one its written letter names."""
        letters = self.written_letters.get(id(node), ())
        if len(letters) != 1:
            return self.uf.new()
        v = self.written_sizes.get(letters[0])
        if v is None:
            v = self.written_sizes[letters[0]] = self.uf.new()
        return v

    def unify_dim(self, a, b) -> bool:
        """Unify two sizes.  Products (Kronecker, vec) are kept in index order, fastest
        first, and unified factor by factor when they have the same number of factors; a
        single size met by a product becomes that product (``a^T vec(X)``: a has mn rows)."""
        if len(a) == 1 and len(b) == 1 and not self.prod:
            # two single sizes and no products (the common case): what the general path below
            # comes to, a union of their two (non-unit) roots
            return self.uf.union(a[0], b[0])
        ca, cb = self.canon(a), self.canon(b)
        if ca == cb:
            return True
        oa, ob = self._ordered(a), self._ordered(b)
        if self._bindable(oa, ob):
            self.prod[oa[0]] = ob
            return True
        if self._bindable(ob, oa):
            self.prod[ob[0]] = oa
            return True
        if len(oa) != len(ob) or not oa:
            return False
        return all(self.uf.union(p, q) for p, q in zip(oa, ob))

    def unify_shape(self, s, t) -> bool:
        # check first so a failed unification leaves no partial merge behind
        if not (self._compatible(s[0], t[0]) and self._compatible(s[1], t[1])):
            return False
        return self.unify_dim(s[0], t[0]) and self.unify_dim(s[1], t[1])

    def _compatible(self, a, b) -> bool:
        if len(a) == len(b) and not self.prod:
            return True  # (without products a size's factors are its own roots: same count)
        oa, ob = self._ordered(a), self._ordered(b)
        return self.canon(a) == self.canon(b) or len(oa) == len(ob) or \
            self._bindable(oa, ob) or self._bindable(ob, oa)

    def node_err(self, node, msg, hint):
        sp = self.span(node)
        self._names = None
        return MatDerivError(msg, sp.start if sp else None, hint, end=sp.end if sp else None,
                             source=self.src)

    # --- constraint walk -------------------------------------------------------------------
    def visit(self, node: Expr):
        tick()
        # one dictionary look-up by the node's class (the classes are disjoint leaves of the
        # hierarchy) rather than a chain of isinstance tests, ~20 long for a function
        handler = _VISITORS.get(type(node))
        s = handler(self, node) if handler is not None else self._v_unexpected(node)
        self.shape[id(node)] = s
        return s

    def _v_symbol(self, node: Symbol):
        d = self.symdims.get(node.name)
        if d is not None:
            return d  # (a symbol met before, or a variable: dims_for's answer, read here)
        kind = self.kinds.get(node.name, node.kind)
        return self.dims_for(node.name, kind, node.name in self.symmetric)

    def _v_const(self, node: Const):
        return ((), ())

    def _v_identity(self, node: Identity):
        v = self.written_size(node)
        return ((v,), (v,))

    def _v_ones(self, node: Ones):
        return ((self.written_size(node),), ())

    def _v_zero(self, node: Zero):
        r = () if node.rows == ONE else (self.uf.new(),)
        c = () if node.cols == ONE else (self.uf.new(),)
        return (r, c)

    def _v_hadamard(self, node):
        kids = node.children()
        shapes = [self.visit(k) for k in kids]
        if isinstance(node, HadamardDiv) and self.is_scalar(shapes[0]) and \
                not self.is_scalar(shapes[1]):
            # c \oslash x: c times the elementwise reciprocal (c (1 \oslash x))
            self.info[id(node)] = "scalar-numerator"
            return shapes[1]
        cur = shapes[0]
        for i in range(1, len(kids)):
            k, sh = kids[i], shapes[i]
            if not self.unify_shape(cur, sh):
                left, left_end = self.left_text(kids[0], kids[i - 1])
                raise self.clash(node, left, cur, k, sh, left_end,
                                 "an elementwise product (or quotient) needs operands of "
                                 "one shape")
        return cur

    def _v_kron(self, node: Kron):
        # index of P (x) Q: i_Q + |Q| i_P, so Q's sizes come first (fastest first)
        r, c = (), ()
        for k in node.args:
            kr, kc = self.visit(k)
            r, c = kr + r, kc + c
        return (r, c)

    def _v_transpose(self, node: Transpose):
        r, c = self.visit(node.arg)
        return (c, r)

    def _v_trace(self, node: Trace):
        if id(node) in self.p.inner_products:
            return self.v_inner(node)
        return self._v_square(node)

    def _v_square(self, node):
        """An inverse, trace or determinant: of a square matrix."""
        s = self.visit(node.arg)
        what = {Inverse: "inverse", Trace: "trace", Det: "determinant"}[type(node)]
        if not self.unify_dim(s[0], s[1]):
            raise self.node_err(node, f"the {what} needs a square matrix, but "
                                f"`{self.text(node.arg)}` is {self.describe(s)}",
                                "check the transposes; the "
                                f"{what} is only defined for square matrices")
        if not isinstance(node, Trace):
            self.square_factors(node, node.arg, what)
        return s if isinstance(node, Inverse) else ((), ())

    def _v_softmax(self, node: Softmax):
        s = self.visit(node.arg)
        if self.kind_of(s) not in ("vector", "scalar"):
            raise self.node_err(node, f"softmax needs a vector, but `{self.text(node.arg)}` "
                                f"is {self.describe(s)}", "apply softmax to a column vector")
        if self.kind_of(s) == "scalar" and not (isinstance(node.arg, Const)
                                                 and node.arg.value == 0):
            # (its derivative printed diag(s) - s^2, unreadable; a 0 takes the size needed)
            raise self.node_err(node, f"softmax of a scalar, `{self.text(node.arg)}`, is 1",
                                "apply softmax to a column vector; for the logistic "
                                "function of a scalar write \\sigma(t)")
        return s

    def _v_vec(self, node: Vec):
        r, c = self.visit(node.arg)
        return (r + c, ())

    def _v_sum(self, node: Sum):
        self.visit(node.arg)
        return ((), ())

    def _v_diag(self, node: Diag):
        s = self.visit(node.arg)
        return (s[0], s[0])

    def _v_diagpart(self, node: DiagPart):
        s = self.visit(node.arg)
        self.unify_dim(s[0], s[1])
        return (s[0], ())

    def _v_norm(self, node: Norm):
        s = self.visit(node.arg)
        k = self.kind_of(s)
        if k == "matrix" and node.kind == "1":
            sp = self.span(node)
            raise UnsupportedError(
                f"the 1-norm `{self.text(node)}` of a matrix is not supported",
                sp.start if sp else None, "the 1-norm is supported for vectors; for a matrix "
                "use the Frobenius norm \\|X\\|_F", end=sp.end if sp else None,
                source=self.src)
        if k == "matrix":
            if node.kind == "2" and re.search(r"_\s*\{?\s*2\s*\}?\s*$", self.p.text(node) or ""):
                sp = self.span(node)
                raise UnsupportedError(
                    f"the spectral norm `{self.text(node)}` of a matrix is not supported",
                    sp.start if sp else None, "use the Frobenius norm \\|X\\|_F",
                    end=sp.end if sp else None, source=self.src)
            self.info[id(node)] = "F"
        elif k == "scalar":
            self.info[id(node)] = "abs"
        return ((), ())

    def _v_unexpected(self, node: Expr):
        if isinstance(node, (Commutation, Differential)):  # pragma: no cover - not parsed
            raise self.node_err(node, "unexpected node in a parsed expression", "")
        raise self.node_err(node, f"cannot type `{self.text(node)}`", "")  # pragma: no cover

    def square_factors(self, node, arg, what):
        r"""``\det(A X B)``, ``(A X)^{-1}``: a determinant or inverse of a product of
        independent factors is read with square factors (otherwise it would be singular
        unless the inner sizes exceed the outer one).  A Gram-type product, where a symbol
        appears both transposed and not (``X^T X``, ``X^T C X``), keeps rectangular factors."""
        if not isinstance(arg, Mul):
            return
        factors = [a for a in arg.args if not self.is_scalar(self.shape[id(a)])]
        if len(factors) < 2:
            return
        if self.canon(self.shape[id(arg)][0]):
            for f in factors[:-1]:
                if not self.canon(self.shape[id(f)][1]):
                    result = "zero" if what == "determinant" else "undefined"
                    raise self.node_err(
                        node, f"`{self.text(arg)}` has rank one (a column times a row), so its "
                        f"{what} is {result} for every value",
                        "check the transposes; a rank-one update is written e.g. "
                        "\\det(I + a b^\\top)")
        inner_t = set()
        for f in factors:
            if isinstance(f, Transpose):
                inner_t.update(m.name for m in f.walk() if isinstance(m, Symbol))
        plain_direct = {m.name for f in factors if not isinstance(f, Transpose)
                        for m in f.walk() if isinstance(m, Symbol)}
        if inner_t & plain_direct:
            return  # Gram type
        # Factors stay rectangular (SPEC 1.2): ``\det(A X B)`` with A p x m, X m x n, B n x p.
        # Forcing them square would give results (``X^{-T}``) that are false for rectangular
        # A and B; the verifier picks sizes where the product has full rank.

    def v_func(self, node: Func):
        s = self.visit(node.arg)
        k = self.kind_of(s)
        if node.name == "bars":
            if k == "scalar":
                self.info[id(node)] = "abs"
                return s
            if k == "matrix":
                if not self.unify_dim(s[0], s[1]):
                    raise self.node_err(node, f"`{self.text(node)}` is a determinant, but "
                                        f"`{self.text(node.arg)}` is {self.describe(s)} "
                                        "(not square)", "the determinant needs a square matrix")
                self.info[id(node)] = "det"
                self.square_factors(node, node.arg, "determinant")
                return ((), ())
            raise self.node_err(node, f"`{self.text(node)}` of {self.describe(s)}",
                                "write the Euclidean norm as \\|x\\| (|.| is the absolute value "
                                "of a scalar or the determinant of a square matrix)")
        if node.name == "diag":
            if k == "vector":
                self.info[id(node)] = "diag"
                return (s[0], s[0])
            if k == "matrix":
                if not self.unify_dim(s[0], s[1]):
                    raise self.node_err(node, f"the diagonal of a non-square matrix: "
                                        f"`{self.text(node.arg)}` is {self.describe(s)}",
                                        "diag(X) needs a square matrix (diag(x) of a vector "
                                        "builds a diagonal matrix)")
                self.info[id(node)] = "diagpart"
                return (s[0], ())
            raise self.node_err(node, f"diag of {self.describe(s)}",
                                "diag(x) takes a column vector, diag(X) a square matrix")
        if node.name == "abs" and k != "scalar":
            pass  # elementwise absolute value
        return s

    def v_inner(self, node: Trace):
        r"""``\langle u, v \rangle``, read as tr(u^T v): u and v of one shape."""
        t, v = node.arg.args
        su, sv = self.visit(t.arg), self.visit(v)
        if not (self.unify_dim(su[0], sv[0]) and self.unify_dim(su[1], sv[1])):
            raise self.node_err(node, f"the inner product `{self.text(node)}` needs two of one "
                                f"shape, but `{self.text(t.arg)}` is {self.describe(su)} and "
                                f"`{self.text(v)}` is {self.describe(sv)}",
                                "\\langle u, v \\rangle (or u : v) is u^\\top v for two vectors "
                                "and \\operatorname{tr}(U^\\top V) for two matrices of one size")
        self.shape[id(t)] = (su[1], su[0])
        self.shape[id(node.arg)] = (su[1], sv[1])
        return ((), ())

    def _transpose_written_t(self, node: Power) -> bool:
        """Whether the exponent of ``node`` (of a vector or matrix) is the letter t, undeclared
        and nowhere else in the expression: the transpose as some texts write it (``X^t``)."""
        ex = node.exponent
        return isinstance(ex, Symbol) and ex.name == "t" and \
            ex.name in self.exponent_letters and \
            sum(isinstance(n, Symbol) and n.name == "t" for n in self.p.tree.walk()) == 1

    def v_power(self, node: Power):
        s = self.visit(node.base)
        e = self.visit(node.exponent)
        if not self.is_scalar(e):
            raise self.node_err(node.exponent, f"the exponent `{self.text(node.exponent)}` is "
                                f"{self.describe(e)}, not a scalar",
                                "an exponent must be a scalar; declare it with scalar={...}")
        k = self.kind_of(s)
        if k == "scalar":
            return s
        if k in ("vector", "row") and isinstance(node.base, Func) and \
                isinstance(node.exponent, Const) and node.exponent.value.denominator == 1 \
                and 2 <= node.exponent.value <= 8:
            # \tanh^2(x) of a vector: the elementwise square
            self.info[id(node)] = "hadamard"
            return s
        if k in ("vector", "row"):
            ex = node.exponent
            if isinstance(ex, Const) and ex.value == -1:
                # (a^{-1} is an inverse, not a power: an exponent -1 is a / or a \frac)
                msg = f"division by {self.describe(s)} `{self.text(node.base)}`"
                hint = ("you can only divide by a scalar; for an elementwise quotient write "
                        "a \\oslash x (\\mathbf{1} \\oslash x for the reciprocal)")
            else:
                msg = (f"power of {self.describe(s)}: `{self.text(node.base)}` is not square")
                hint = ("for an elementwise square write x \\odot x, for the squared norm "
                        "\\|x\\|^2 or x^\\top x")
                if self._transpose_written_t(node):
                    hint = "for the transpose write x^\\top (or x^T); " + hint
            raise self.node_err(node, msg, hint)
        if id(node) in self.p.divisions:
            # \frac{1}{N} with N a matrix (by default, as an uppercase letter): N is most often
            # a count there, and a matrix is not divided by (N^{-1} is its inverse)
            base = self.text(node.base)
            hint = "a matrix is not divided by; for its inverse write " + (
                f"{base}^{{-1}}" if isinstance(node.base, Symbol) else f"({base})^{{-1}}") + \
                ", for an elementwise quotient \\oslash"
            if isinstance(node.base, Symbol) and node.base.name not in self.declared:
                hint = (f"`{base}` is a matrix by default (an uppercase letter): if it is a "
                        f"scalar (a count), declare scalar={{{node.base.latex or base}}}; "
                        "otherwise " + hint)
            raise self.node_err(node.base, f"division by {self.describe(s)} `{base}`", hint)
        if self._transpose_written_t(node):  # \operatorname{tr}(X^t): the power t, or X^T?
            base = self.text(node.base)
            raise self.node_err(node, f"`{self.text(node)}` may be the power t of `{base}` or "
                                "its transpose written with a t", "for the transpose write "
                                f"{base}^\\top (or {base}^T); for the power, declare scalar={{t}}")
        if not self.unify_dim(s[0], s[1]):
            raise self.node_err(node, f"power of a non-square matrix: `{self.text(node.base)}` is "
                                f"{self.describe(s)}", "a matrix power needs a square matrix")
        ex = node.exponent
        if isinstance(ex, Const) and ex.value.denominator != 1:
            # A^{1/2}: a matrix root, which matderiv neither differentiates nor evaluates (it
            # was an internal error at the numerical check: "exponent -0.5")
            raise _refusal(self.p, node, f"`{self.text(node)}`: fractional powers and roots of "
                           "a vector or matrix are not supported", "a matrix power needs a "
                           "whole-number exponent; \\sqrt{X} (elementwise square root) is the one "
                           "root of a matrix that is supported", UnsupportedError)
        return s

    def v_add(self, node: Add):
        terms = node.args
        cur = None
        first_nc = None
        prev = None
        consts = []
        for t in terms:
            s = self.visit(t)
            if isinstance(t, Const) or (isinstance(t, Mul) and all(isinstance(a, Const) for a in t.args)):
                consts.append(t)
                prev = t
                continue
            if cur is None:
                cur, first_nc = s, t
            elif not self.unify_shape(cur, s):
                left, left_end = self.left_text(terms[0], prev)
                if left_end is None:
                    left = self.text(first_nc)
                hint = ("all terms of a sum must have one shape; check the transposes and the "
                        "declarations")
                written = self.text(t).lstrip("+- ")
                if written.endswith("'"):  # x - x': a second point (kernels), or a transpose?
                    hint = (f"`{written}` reads as a transpose (as in MATLAB); for another "
                            "symbol, write it as one: \\tilde{x}, x_2, x^{*}")
                raise self.clash(node, left, cur, t, s, left_end, hint)
            prev = t
        if cur is None:
            return ((), ())
        k = self.kind_of(cur)
        if consts and k != "scalar":
            for c in consts:
                val = c.value if isinstance(c, Const) else None
                if k == "matrix" and val != 0:
                    raise self.node_err(c, f"the number `{self.text(c)}` is added to {self.describe(cur)}"
                                        f" in `{self.text(node)}`",
                                        "write c I for a multiple of the identity or "
                                        "c \\mathbf{1}\\mathbf{1}^\\top for a matrix of c's")
            self.info[id(node)] = ("consts", cur)
        return cur

    def v_mul(self, node: Mul):
        args = node.args
        shapes = [self.visit(a) for a in args]
        cur = None
        cur_first = None       # index of the first factor of the current chain
        prev_idx = None        # index of the last non-scalar factor
        groups_at = []         # indices where a collapsed scalar prefix ends
        for i, (a, s) in enumerate(zip(args, shapes)):
            if not s[0] and not s[1]:  # (is_scalar, inlined: tested for every factor)
                continue
            if cur is None:
                cur, cur_first, prev_idx = s, i, i
                continue
            if not cur[0] and not cur[1]:
                # x^T y z: the chain so far collapsed to a scalar; it acts as a scalar factor
                groups_at.append(i)
                cur, cur_first, prev_idx = s, i, i
                continue
            if not self.unify_dim(cur[1], s[0]):
                spp = self.span(args[prev_idx])
                left, left_end = self.left_text(args[cur_first], args[prev_idx])
                hint = ("in a product A B the columns of A must match the rows of B; "
                        "check the transposes and the order of the factors")
                if self.kind_of(cur) == "vector" and self.kind_of(s) == "vector":
                    u, v = _operand(_short(left)), _operand(self.text(a))
                    hint = (f"for the inner product of two vectors write {u}^\\top {v}, for "
                            f"the outer product {u} {v}^\\top")
                if isinstance(args[prev_idx], Symbol) and prev_idx == cur_first and spp and \
                        self.src[spp.end:spp.end + 1] == "(":
                    f = self.text(args[prev_idx])
                    hint = (f"`{f}(...)` reads as {f} times the bracket: a function matderiv does "
                            "not know cannot be differentiated; write it out (\\exp, \\log, "
                            "\\sigma, \\tanh, \\operatorname{softmax}, ...)")
                raise self.clash(node, left, cur, a, s, left_end, hint,
                                 verb="cannot be multiplied by")
            cur = (cur[0], s[1])
            prev_idx = i
        if groups_at:
            self.info[id(node)] = ("group", groups_at)
        return cur if cur is not None else ((), ())


#: The typing rule of each node class (see :meth:`_Infer.visit`).
_VISITORS = {
    Symbol: _Infer._v_symbol, Const: _Infer._v_const, Identity: _Infer._v_identity,
    Ones: _Infer._v_ones, Zero: _Infer._v_zero, Add: _Infer.v_add, Mul: _Infer.v_mul,
    Hadamard: _Infer._v_hadamard, HadamardDiv: _Infer._v_hadamard, Kron: _Infer._v_kron,
    Transpose: _Infer._v_transpose, Trace: _Infer._v_trace, Inverse: _Infer._v_square,
    Det: _Infer._v_square, Power: _Infer.v_power, Softmax: _Infer._v_softmax, Vec: _Infer._v_vec,
    Sum: _Infer._v_sum, Diag: _Infer._v_diag, DiagPart: _Infer._v_diagpart, Norm: _Infer._v_norm,
    Func: _Infer.v_func,
}


def _name_classes(inf: _Infer) -> dict:
    """Letters for the size classes: the variables' first, then by first appearance."""
    # the class of every size, found once (naming merges nothing): list reads below, not a
    # call of the union-find per size read
    parent = inf.uf.parent
    root_of = []
    for v in range(len(parent)):
        while parent[v] != v:
            v = parent[v]
        root_of.append(v)
    prod = inf.prod
    names: dict[int, str] = {}
    # a size never takes the letter of a symbol, of the expression or declared for it (the
    # printer writes a size used as a number as its letter: n, not tr(I_n))
    taken = {n for n in set(inf.symdims) | inf.declared if len(n) == 1 and n.islower()}
    taken -= inf.size_letter_scalars
    used: set[str] = set()

    def pick(pref=None):
        if pref and pref not in used and pref not in taken:
            return pref
        for L in SIZE_LETTERS:
            if L not in used and L not in taken:
                return L
        k = 1
        while f"n{k}" in used:
            k += 1
        return f"n{k}"

    def assign(v, pref=None):
        r = root_of[v]
        if r == 0 or r in names or r in prod:  # a product of named sizes has no letter
            return
        L = pick(pref)
        names[r] = L
        used.add(L)

    # a size written on an identity or a ones vector (I_q, \mathbf{1}_n) names its class, before
    # the variables take theirs: tr(I_n) x^T x by x is 2 n x, not 2 m x with x of size n
    for letter, v in inf.written_sizes.items():
        assign(v, letter)
    for w in inf.wrt:
        if w not in inf.symdims:
            continue
        (rows, cols) = inf.symdims[w]
        rr = [root_of[v] for v in rows]
        cc = [root_of[v] for v in cols]
        if rr and cc:
            if rr == cc:
                assign(rows[0], "n")
            else:
                assign(rows[0], "m")
                assign(cols[0], "n")
        elif rr:
            assign(rows[0], "n")
        elif cc:
            assign(cols[0], "n")
    # the classes to name: the roots of all sizes, but the products (every later assign of a
    # size whose class has its letter is a no-op, so the walks below stop once all have one:
    # most often the variables' sizes were all there is, x^T A x by x)
    classes = len({r for r in root_of[1:] if r not in prod})
    if len(names) == classes:
        return names
    # first appearance: leaves in source order
    symdims, shape = inf.symdims, inf.shape
    for n in inf.p.tree.walk():
        cls = type(n)
        if cls is Symbol:
            s = symdims.get(n.name)
        elif cls is Identity or cls is Ones or cls is Zero:
            s = shape.get(id(n))
        else:
            continue
        if s is None:
            continue
        for v in s[0] + s[1]:
            if root_of[v] not in names:  # (assign's first test, inline: most are named)
                assign(v)
        if len(names) == classes:
            return names  # (all named: the rest of the walk would assign nothing)
    for d in symdims.values():
        for v in d[0] + d[1]:
            assign(v)
    for v in range(1, len(parent)):
        assign(v)
    return names


def _normalize_list(names, what) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        names = [n for n in re.split(r"\s*,\s*", names.strip().strip("{}")) if n]
    out = []
    for n in names:
        try:
            out.append(normalize_name(n))
        except MatDerivError as e:
            raise MatDerivError(f"in the {what} list: {e.message}", None, e.hint) from None
    return out


def _default_kind(name: str) -> str:
    base = name.split("_", 1)[0]
    if base in GREEK:
        return "matrix" if base[0].isupper() or base[3:4].isupper() and base.startswith("var") \
            else "scalar"
    return "matrix" if base[:1].isupper() else "vector"


def _declaration_that_types(parsed, wrt_names, present, declared, given) -> str | None:
    """For an expression that does not type: the one declaration of an undeclared symbol's kind
    that makes it type, as a hint (``t`` in ``\\exp(t A)`` is a vector by default; declared a
    scalar, the expression types), or None when no single declaration does."""
    if len(present) > 12:  # (each trial types the whole expression again)
        return None
    base = {k: tuple(_normalize_list(v, k)) for k, v in given.items()}
    # a symbol written transposed (w in w^T x + b) is least likely the scalar: tried last
    transposed = {n.arg.name for n in parsed.tree.walk()
                  if isinstance(n, Transpose) and isinstance(n.arg, Symbol)}
    for name, sym in sorted(present.items(), key=lambda kv: kv[0] in transposed):
        if name in declared:
            continue
        default = sym.kind
        latin = sym.name[:1].isascii() and sym.name[:1].islower() and (
            len(sym.name) == 1 or sym.name[1] == "_") and not re.match(
            r"\\(?:mathbf|boldsymbol|bm)\b", sym.latex)  # x, x_1, \bar{x}; not bold
        if default == "vector" and latin:
            wanted, why = "scalar", "a lowercase Latin letter"
        elif default == "scalar" and sym.latex.startswith("\\"):
            wanted, why = "vector", "a plain lowercase Greek letter"
        else:
            continue
        trial = dict(base, **{wanted: base[wanted] + (name,)})
        try:
            infer(parsed, wrt_names, _retrying=True, **trial)
        except MatDerivError:
            continue
        return (f"`{sym.latex}` is a {default} by default ({why}): if it is a {wanted}, "
                f"declare {wanted}={{{sym.latex}}}")
    return None


def _refusal(parsed: Parsed, node: Expr, message: str, hint: str, cls=MatDerivError):
    """The error that refuses ``node`` of ``parsed``, pointing at its text."""
    sp = parsed.span(node)
    return cls(message, sp.start if sp else None, hint, end=sp.end if sp else None,
               source=parsed.source)


def _refuse_transposed_default_scalars(parsed: Parsed, decl: dict, transposes: list) -> None:
    r"""``\beta^\top x`` with beta a scalar by default (a plain lowercase Greek letter) was the
    product beta x, whose derivative by x is beta I: the transpose says the author meant a
    vector.  Refused, with the declaration that says so; a declared scalar may be transposed,
    and so is the first of an inner product, \langle \lambda, \mu \rangle (tr(u^T v)).
    ``transposes``: the transposes of the tree, in the order of its walk."""
    implied = {id(n.arg.args[0]) for n in parsed.tree.walk()
               if id(n) in parsed.inner_products} if parsed.inner_products else ()
    for node in transposes:
        if isinstance(node.arg, Symbol) and id(node) not in implied:
            sym = node.arg
            if sym.kind == "scalar" and sym.name not in decl and sym.latex.startswith("\\"):
                raise _refusal(parsed, node, f"`{parsed.text(node) or sym.latex}`: `{sym.latex}` "
                               "is a scalar by default (a plain lowercase Greek letter), which a "
                               "transpose leaves as it is",
                               f"if it is a vector, declare vector={{{sym.latex}}} or write it "
                               f"bold, \\boldsymbol{{{sym.latex}}}")


def _refuse_functions_of_the_variable(parsed: Parsed, wrt_names) -> None:
    r"""``x(\tau)`` with tau the variable reads as x as a function of tau, which matderiv
    cannot know, and would be differentiated as the product x tau (``\|x(t)\|^2`` by t gave
    2 t x^T x).  So does a lowercase letter before a bracket that holds one symbol, ``f(x)``,
    ``\phi(x)``, by another variable: the bracket says a function (the features of
    ``w^\top \phi(x)``), and ``w^\top f(x)`` by w printed ``x f^\top``, the derivative of
    the product.  ``A(x + b)``, a bracket that holds more, and ``A(x)``, a matrix applied to a
    vector (the operator's value is the product), are products as before."""
    src = parsed.source
    for before, inside, start, end, head_end, arg_start, arg_end in parsed.calls:
        if before == inside:
            continue
        text = src[start:end]
        if inside in wrt_names:
            raise MatDerivError(
                f"`{text}` reads as a function of the variable, which matderiv cannot know",
                start, "write the expression in the variable itself; for the product write it "
                "with a space or \\cdot, or the scalar first", end=end, source=src)
        if before[:1].islower():
            head, arg = src[start:head_end], src[arg_start:arg_end]
            raise MatDerivError(
                f"`{text}` reads as a function `{head}` of `{arg}`, which matderiv cannot know",
                start, "if it is a given value (features), name it by a symbol of its own, as "
                f"z; for the product write `{head} {arg}` or `{head} \\cdot {arg}`",
                end=end, source=src)


#: What a trace or a determinant is written with (tr, Tr, trace, det, logdet, |X|, \lvert): a text
#: without any of these has neither.
_TRACE_OR_DET_RE = re.compile(r"tr|Tr|det|Det|\||vert")

#: The elementwise functions that are also functions of a square matrix (its power series):
#: under a trace or a determinant they read as those.
_MATRIX_FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh")


def _refuse_matrix_functions_under_a_trace(parsed: Parsed, inf: _Infer) -> None:
    r"""``\operatorname{tr}(\log \Sigma)`` reads as the trace of the matrix logarithm (it is
    ``\log\det \Sigma``, a textbook identity), ``\det(\exp X)`` as the determinant of the
    matrix exponential; matderiv's functions of a matrix are elementwise, and the trace of an
    elementwise function sums its diagonal only, which is not written so: the derivative
    printed (``I_n \oslash \Sigma``) would be of another function.  A function inside a
    product, tr(A^T exp(X)) (the Frobenius product), stays elementwise, and so does one that
    holds no variable (a constant term, whatever it means)."""
    if not inf.wrt or not _TRACE_OR_DET_RE.search(parsed.source):
        return  # (a read-back, which has no variable, or no trace or determinant written)
    for node in parsed.tree.walk():
        det_bars = isinstance(node, Func) and node.name == "bars" and \
            inf.info.get(id(node)) == "det"  # |\exp(X)|, the determinant
        if not ((isinstance(node, (Trace, Det)) or det_bars) and isinstance(node.arg, Func)
                and node.arg.name in _MATRIX_FUNCTIONS):
            continue
        r, c = inf.cshape(inf.shape[id(node.arg.arg)])
        if not (r and c):
            continue  # (of a scalar: tr(\exp(t)) is \exp(t))
        if not any(isinstance(n, Symbol) and n.name in inf.wrt for n in node.arg.arg.walk()):
            continue  # a constant term: its reading does not change the derivative
        name = node.arg.name
        what = "trace" if isinstance(node, Trace) else "determinant"  # (Det, or det_bars)
        inner = parsed.text(node.arg.arg) or "X"
        diagonal = rf"\operatorname{{diag}}({inner})"
        elementwise = (rf"\sqrt{{{diagonal}}}" if name == "sqrt" else rf"\{name}({diagonal})")
        hint = (rf"for \operatorname{{tr}}(\log X) = \log\det X write \log\det {inner}; "
                if name == "log" and what == "trace" else "")
        hint += (rf"for the elementwise function of the diagonal write \mathbf{{1}}^\top "
                 rf"{elementwise}" if what == "trace" else
                 rf"\det(e^{{X}}) = e^{{\operatorname{{tr}}(X)}}: write \exp(\operatorname{{tr}}({inner}))"
                 if name == "exp" else "write it through \\det, \\operatorname{tr} and powers of "
                 "the matrix")
        raise _refusal(parsed, node, f"`{parsed.text(node)}` reads as the {what} of the matrix "
                       f"function {name} of `{inner}`, which is not supported (matderiv's "
                       "functions of a matrix are elementwise)", hint, UnsupportedError)


def _refuse_square_exponentials(parsed: Parsed, inf: _Infer) -> None:
    r"""``e^{X}`` of a square matrix reads to most as the matrix exponential, which matderiv
    does not compute; ``\exp(X)`` is the elementwise one (SPEC), and ``e^{X}`` of a
    rectangular matrix can only be elementwise."""
    if not parsed.exp_powers:
        return
    for node in parsed.tree.walk():
        if id(node) not in parsed.exp_powers:
            continue
        r, c = inf.cshape(inf.shape[id(node.arg)])
        if r and c and r == c:
            raise _refusal(parsed, node, f"`{parsed.text(node)}` of a square matrix is not "
                           "supported: it reads as the matrix exponential, which matderiv does "
                           "not compute", "for the elementwise exponential write "
                           f"\\exp({parsed.text(node.arg) or 'X'})", UnsupportedError)


def infer(parsed: Parsed, wrt: Sequence[str] | str, scalar=(), vector=(), matrix=(),
          symmetric=(), _retrying: bool = False) -> Typed:
    r"""Type ``parsed``: kinds from letters and declarations, sizes by unification.

    ``wrt`` and the declaration lists hold names in either spelling (``\Sigma`` or
    ``Sigma``).  Raises :class:`MatDerivError` on a size clash (naming both sides), a
    conflicting declaration, or an operation on the wrong kind (det of a non-square matrix,
    a vector power, division by a vector, ...).
    """
    src = parsed.source
    wrt_list = [wrt] if isinstance(wrt, str) else list(wrt or ())
    wrt_names = _normalize_list(wrt_list, "variable")
    decl: dict[str, str] = {}
    sym_names = set(_normalize_list(symmetric, "symmetric"))
    for kind, lst in (("scalar", scalar), ("vector", vector), ("matrix", matrix)):
        for n in _normalize_list(lst, kind):
            if n in decl and decl[n] != kind:
                raise MatDerivError(f"`{n}` is declared both {decl[n]} and {kind}", None,
                                    "give each symbol one kind")
            decl[n] = kind
    for n in sym_names:
        if decl.get(n, "matrix") != "matrix":
            raise MatDerivError(f"`{n}` is declared both {decl[n]} and symmetric", None,
                                "a symmetric symbol is a square matrix")
        decl[n] = "matrix"

    # one walk gathers what the rules below read: the powers, the identities and ones vectors,
    # the transposes, the symbols present (the rules then run in their order, each over its
    # own nodes)
    powers, sized, transposes = [], [], []
    present: dict[str, Symbol] = {}  # symbols present in the tree, with their parser kinds
    for node in parsed.tree.walk():
        cls = type(node)
        if cls is Symbol:
            if node.name not in present:
                present[node.name] = node
        elif cls is Power:
            powers.append(node)
        elif cls is Transpose:
            transposes.append(node)
        elif cls is Identity or cls is Ones:
            sized.append(node)
    # an undeclared letter in an exponent (X^k, a^x, X^{k - 1}) is a scalar, unless the
    # exponent is made of vectors, as a transpose or a norm in it says (2^{x^T x}, a^{\|x\|^2})
    exponent_letters = set()  # (the letters made scalars so, undeclared)
    for node in powers:
        subs = list(node.exponent.walk())
        if any(isinstance(sub, (Transpose, Norm)) for sub in subs):
            continue
        for sub in subs:
            if isinstance(sub, Symbol) and sub.name not in decl:
                decl[sub.name] = "scalar"
                exponent_letters.add(sub.name)
    # a letter written as the size of an identity or a ones vector (I_n, \mathbf{1}_n) and
    # used as a symbol too is a scalar: I_n - \frac{1}{n} \mathbf{1}\mathbf{1}^T (the
    # centering matrix; the formula holds for every value of n, the size among them)
    written = {id(node): identity_size_letters(parsed.text(node)) for node in sized}
    size_scalars = set()
    for letters in written.values():
        for letter in letters:
            if letter not in decl:
                decl[letter] = "scalar"
                size_scalars.add(letter)
    inf = _Infer(parsed, wrt_names, decl, sym_names)
    inf.exponent_letters = exponent_letters
    inf.size_letter_scalars = size_scalars  # (the size keeps its letter: I_n, 1/n)
    inf.written_letters = written
    _refuse_functions_of_the_variable(parsed, wrt_names)
    _refuse_transposed_default_scalars(parsed, decl, transposes)
    # the variables' sizes are created first
    for w in wrt_names:
        k = decl.get(w) or (present[w].kind if w in present else _default_kind(w))
        inf.kinds.setdefault(w, k)
        inf.dims_for(w, k, w in sym_names)
    try:
        inf.visit(parsed.tree)
    except RecursionError:
        raise NestedTooDeeplyError("the expression is nested too deeply", 0,
                            "simplify the bracket nesting", source=src) from None
    except MatDerivError as e:
        if not _retrying and "by default" not in (e.hint or ""):
            fix = _declaration_that_types(parsed, wrt_names, present, inf.declared,
                                          dict(scalar=scalar, vector=vector, matrix=matrix,
                                               symmetric=symmetric))
            if fix is not None:
                e.hint = fix + ("; otherwise " + e.hint if e.hint else "")
        raise e.with_source(src)
    _refuse_square_exponentials(parsed, inf)
    _refuse_matrix_functions_under_a_trace(parsed, inf)

    inf._names = None
    names = inf.names()

    rebuilt = _Rebuild(parsed, inf, names, sym_names)
    mk_symbol, typed_syms = rebuilt.mk_symbol, rebuilt.typed_syms
    try:
        tree = rebuilt.rb(parsed.tree)
    except RecursionError:
        raise NestedTooDeeplyError("the expression is nested too deeply", 0,
                            "simplify the bracket nesting", source=src) from None
    # the distinct symbols of the tree in order of first appearance: those the rebuilding made,
    # in the order it made them, which is the tree's unless it made an exponent after a factor
    # that stands after it (a walk of the tree then says)
    syms = list(symbols_of(tree)) if rebuilt.out_of_order else list(typed_syms.values())

    variables = []
    for w in wrt_names:
        if w in typed_syms:
            variables.append(typed_syms[w])
        else:
            # absent from the expression: the variable as it was written (W^{(1)}, \hat{y}),
            # else a spelling made from its name
            written = next((symbol_latex(t) for t in wrt_list if isinstance(t, str)
                            and _normalize_list([t], "variable") == [w]), None)
            variables.append(mk_symbol(w, inf.kinds[w], written or _latex_for(w)))
    for v in variables:
        if v not in syms:
            syms.append(v)
    try:
        for n in tree.walk():
            n.shape
    except ShapeError as e:  # pragma: no cover - an inference bug
        raise MatDerivError(f"internal shape error: {e}", None,
                            "please report this expression", source=src) from None
    # the fields set in the instance's dictionary at once (the frozen dataclass's __init__ sets
    # each through object.__setattr__)
    typed = object.__new__(Typed)
    typed.__dict__.update(tree=tree, variables=tuple(variables), symbols=tuple(syms), source=src,
                          spans=rebuilt.new_spans)
    return typed


class _Rebuild:
    """The typed tree of a parsed one, once its sizes are solved: every symbol, identity, ones
    vector and zero with its sizes named, the placeholders resolved (what the walk of
    :class:`_Infer` found, kept in ``inf.info``), each new node with the span of the node it
    replaces.  One method per node class, chosen by a dictionary look-up (:data:`_REBUILDERS`)."""

    def __init__(self, parsed: Parsed, inf: _Infer, names: dict, sym_names: set):
        self.parsed, self.inf, self.names, self.sym_names = parsed, inf, names, sym_names
        self.spans = parsed.spans
        self.dimt_memo: dict = {}
        self.symbol_dims: dict[str, tuple] = {}  # name -> (rows, cols), named
        self.typed_syms: dict[str, Symbol] = {}
        self.new_spans: dict[int, Span] = {}
        #: whether symbols were made in another order than the new tree's walk meets them
        self.out_of_order = False

    def dimt(self, d) -> tuple:
        got = self.dimt_memo.get(d)
        if got is None:
            names = self.names
            got = self.dimt_memo[d] = tuple(sorted(names[v] for v in self.inf.canon(d)))
        return got

    def mk_symbol(self, name: str, fallback_kind: str, latex: str) -> Symbol:
        # a fresh (equal) object per occurrence, so that spans stay per occurrence
        inf = self.inf
        kind = inf.kinds.get(name, fallback_kind)
        dims = self.symbol_dims.get(name)
        if dims is None:  # (its sizes named once per name, not per occurrence)
            r, c = inf.symdims[name]
            dims = self.symbol_dims[name] = (self.dimt(r), self.dimt(c))
        sym = Symbol(name, dims[0], dims[1], kind, latex, name in self.sym_names)
        self.typed_syms.setdefault(name, sym)
        return sym

    def rb(self, node: Expr) -> Expr:
        new = _REBUILDERS.get(type(node), _Rebuild._children)(self, node)
        sp = self.spans.get(id(node))
        if sp is not None and id(new) not in self.new_spans:
            self.new_spans[id(new)] = sp
        return new

    def _children(self, node: Expr) -> Expr:
        kids = node.children()
        if not kids:
            return node
        return node.with_children(tuple(self.rb(k) for k in kids))

    def _symbol(self, node: Symbol) -> Expr:
        return self.mk_symbol(node.name, node.kind, node.latex)

    def _unary(self, node: Expr) -> Expr:
        # (a one-child node whose rebuilding is its child's: no tuple of children made)
        return type(node)(self.rb(node.arg))

    def _leaf(self, node: Expr) -> Expr:
        return node  # (a number: nothing to rebuild)

    def _identity(self, node: Identity) -> Expr:
        return Identity(self.dimt(self.inf.shape.get(id(node))[0]))

    def _ones(self, node: Ones) -> Expr:
        return Ones(self.dimt(self.inf.shape.get(id(node))[0]))

    def _zero(self, node: Zero) -> Expr:
        s = self.inf.shape.get(id(node))
        return Zero(self.dimt(s[0]), self.dimt(s[1]))

    def _add(self, node: Add) -> Expr:
        terms = [self.rb(t) for t in node.args]
        info = self.inf.info.get(id(node))
        if info and info[0] == "consts":
            shp = info[1]
            rows, cols = self.dimt(shp[0]), self.dimt(shp[1])
            out = []
            for old, t in zip(node.args, terms):
                if isinstance(old, Const) or (isinstance(old, Mul) and
                                              all(isinstance(a, Const) for a in old.args)):
                    val = old.value if isinstance(old, Const) else _cprod(old)
                    if val == 0:
                        continue  # adding zero
                    filled = ones((rows, cols))  # (a vector or row: typing refused matrices)
                    out.append(Mul((Const(val), filled)) if val != 1 else filled)
                else:
                    out.append(t)
            if not out:
                return Zero(rows, cols)
            return out[0] if len(out) == 1 else Add(tuple(out))
        return Add(tuple(terms))

    def _mul(self, node: Mul) -> Expr:
        args = [self.rb(a) for a in node.args]
        info = self.inf.info.get(id(node))
        if info and info[0] == "group":
            cuts = info[1]
            pieces, start = [], 0
            for cut in cuts:
                part = args[start:cut]
                pieces.append(part[0] if len(part) == 1 else Mul(tuple(part)))
                start = cut
            pieces.extend(args[start:])
            return Mul(tuple(pieces))
        return Mul(tuple(args))

    def _norm(self, node: Norm) -> Expr:
        arg = self.rb(node.arg)
        info = self.inf.info.get(id(node))
        if info == "abs":
            return Func("abs", arg)
        return Norm(arg, "F" if info == "F" else node.kind)

    def _trace(self, node: Trace) -> Expr:
        inf = self.inf
        if id(node) in self.parsed.inner_products and inf.is_scalar(inf.shape[id(node.arg)]):
            return self.rb(node.arg)  # \langle u, v \rangle of two vectors (or scalars): u^T v
        kids = node.children()  # (as _children, inlined: one call less per level)
        return node.with_children(tuple(self.rb(k) for k in kids)) if kids else node

    def _bare_chain(self, node: Expr, f: Func) -> Expr | None:
        """``node`` (``f`` or a power of it) with ``f`` an elementwise function written before a
        product whose leading scalars it takes (see :func:`_scalar_prefix`); None otherwise."""
        if isinstance(f.arg, Mul) and id(f.arg) in self.parsed.bare_chains:
            k = _scalar_prefix(self.inf, f.arg)
            if k:  # \sin \tau A is sin(tau) A: the function takes the scalar in front
                args = [self.rb(a) for a in f.arg.args]
                head = Func(f.name, args[0] if k == 1 else Mul(tuple(args[:k])))
                if f is not node:  # \sin^2 \tau A (typed as a power first: A stays square)
                    head = Power(head, self.rb(node.exponent))
                    self.out_of_order = True  # (made after all the factors, it stands before some)
                return Mul((head,) + tuple(args[k:]))
        return None

    def _power(self, node: Power) -> Expr:
        if isinstance(node.base, Func):
            chain = self._bare_chain(node, node.base)
            if chain is not None:
                return chain
        if self.inf.info.get(id(node)) == "hadamard":
            base = self.rb(node.base)
            return Hadamard((base,) * int(node.exponent.value))
        kids = node.children()  # (as _children, inlined: one call less per level)
        return node.with_children(tuple(self.rb(k) for k in kids)) if kids else node

    def _func(self, node: Func) -> Expr:
        chain = self._bare_chain(node, node)
        if chain is not None:
            return chain
        arg = self.rb(node.arg)
        info = self.inf.info.get(id(node))
        if node.name == "bars":
            return Det(arg) if info == "det" else Func("abs", arg)
        if node.name == "diag":
            return Diag(arg) if info == "diag" else DiagPart(arg)
        return Func(node.name, arg)

    def _hadamard_div(self, node: HadamardDiv) -> Expr:
        inf = self.inf
        if inf.info.get(id(node)) == "scalar-numerator":
            s = inf.shape.get(id(node))
            num, den = self.rb(node.num), self.rb(node.den)
            recip = HadamardDiv(ones((self.dimt(s[0]), self.dimt(s[1]))), den)
            return recip if num == Const(1) else Mul((num, recip))
        kids = node.children()  # (as _children, inlined: one call less per level)
        return node.with_children(tuple(self.rb(k) for k in kids)) if kids else node

    def _inverse(self, node: Inverse) -> Expr:
        arg = self.rb(node.arg)
        if self.inf.is_scalar(self.inf.shape[id(node.arg)]):
            return Power(arg, Const(-1))
        return Inverse(arg)


#: The rebuilding of each node class (the others: their children rebuilt).
_REBUILDERS = {
    Symbol: _Rebuild._symbol, Identity: _Rebuild._identity, Ones: _Rebuild._ones,
    Zero: _Rebuild._zero, Add: _Rebuild._add, Mul: _Rebuild._mul, Norm: _Rebuild._norm,
    Trace: _Rebuild._trace, Power: _Rebuild._power, Func: _Rebuild._func,
    HadamardDiv: _Rebuild._hadamard_div, Inverse: _Rebuild._inverse,
    Const: _Rebuild._leaf, Transpose: _Rebuild._unary, Det: _Rebuild._unary,
    Softmax: _Rebuild._unary, Diag: _Rebuild._unary, DiagPart: _Rebuild._unary,
    Vec: _Rebuild._unary, Sum: _Rebuild._unary,
}


def _scalar_prefix(inf: _Infer, chain: Mul) -> int:
    """For a product written as the bare argument of an elementwise function: how many of its
    leading factors the function takes when they are a scalar and the whole is not
    (``\\sin \\tau A``, ``\\cos \\theta\\, x``: 1), else 0 (it takes the whole product:
    ``\\sin 2\\tau``, ``\\tanh W x``, ``\\log 2 x^\\top x``)."""
    shapes = [inf.shape[id(a)] for a in chain.args]
    if inf.is_scalar(inf.shape[id(chain)]) or not inf.is_scalar(shapes[0]):
        return 0
    best, rows, cols = 1, None, None
    for i, s in enumerate(shapes):
        if inf.is_scalar(s):
            if rows is None:
                best = i + 1
            continue
        rows = s[0] if rows is None else rows
        cols = s[1]
        if inf.canon(rows) == () and inf.canon(cols) == ():
            best, rows, cols = i + 1, None, None
    return best


#: A closing bracket, with the spaces and size command before it.
_CLOSER_RE = re.compile(r"\s*(?:(?:\\right|\\[bB]igg?r?)\s*)?[)\]]")


def _operand(t: str) -> str:
    """``t`` bracketed when it is more than one factor (``A x`` -> ``(A x)``), to write it in a
    hint next to a transpose."""
    t = t.strip()
    bracketed = (t[:1] in "([" or t.startswith("\\left")) and t[-1:] in ")]"
    if bracketed or not any(ch.isspace() or ch in "+-" for ch in t):
        return t
    return f"({t})"


def _short(t: str, limit: int = 60) -> str:
    """Long source excerpts are cut in the middle for messages."""
    if len(t) <= limit:
        return t
    k = (limit - 5) // 2
    return t[:k].rstrip() + " … " + t[-k:].lstrip()


def _cprod(m: Mul) -> Fraction:
    v = Fraction(1)
    for a in m.args:
        v *= a.value
    return v


def _latex_for(name: str) -> str:
    base, _, sub = name.partition("_")
    lat = ("\\" + base) if base in GREEK else base
    if sub:
        lat += "_" + (sub if len(sub) == 1 else "{" + sub + "}")
    return lat
