"""Numerical verification of a derivative before anyone sees it (SPEC 1.3 ``check``).

Owns random instances that honour the declarations (symmetric matrices symmetric, square
matrices well conditioned, a positive fallback for logs and square roots) and the comparison of
a closed form with central finite differences of the original expression along random
directions (fourth-order stencil).  A symmetric variable is drawn symmetric but moved in
unconstrained directions: its derivatives are the unconstrained ones evaluated at a symmetric
point (README, "Symmetric matrices"), and a symmetric direction could not tell ``A`` from
``A^T`` in a gradient.  A directional check ``J vec(V)`` against
``d/de vec F(X + eV)`` tests every entry of the arranged result at once, and so also its
layout.

Knows nothing of LaTeX or documents.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .batch import BatchUnsupported, evaluate_batch
from .errors import MatDerivError
from .expr import ONE, Commutation, Det, Expr, Identity, Inverse, Ones, Power, Symbol, Zero
from .numeric import DIFF_PREFIX, Evaluator, NumericDomainError, dim_size


def evaluate(e, env, sizes):
    """Evaluate without per-call set-up (callers hold ``np.errstate``)."""
    v = Evaluator(env, sizes).ev(e)
    return v if type(v) is float or isinstance(v, np.ndarray) else float(v)

#: What to say when no random point gives finite values.
NOT_FINITE_HINT = ("a division by zero, or a log or square root of something that is never "
                   "positive, cannot be checked; declare the symbols that must be symmetric, "
                   "or pass check=false to skip verification")

#: What to say when the finite differences do not settle.
UNSETTLED_HINT = ("the expression changes too fast at random points for finite differences "
                  "(a sine of an exponential, a huge power); pass check=false to skip "
                  "verification")

SIZES = {"n": 3, "m": 4, "p": 5, "q": 2, "r": 6, "s": 7, "k": 3, "l": 4}
#: How random points are drawn, tried in turn where the expression is not finite: "generic"
#: (signed values), "positive" (for logs and roots), "unit" (values in (0.1, 0.9), for
#: \log(1 - p) beside \log p: a probability)
STRATEGIES = ("generic", "positive", "unit")
DRAWS = 2
DIRECTIONS = 1
RTOL = 1e-6


class VerificationError(MatDerivError):
    """The closed form disagrees with finite differences (an engine bug: never printed)."""


@dataclass(frozen=True)
class Check:
    """What to verify: ``result`` is the derivative of ``func`` by ``var``.

    ``arrangement`` says how ``result`` relates to the numerator Jacobian
    J = d vec F / d (vec X)^T:  ``"J"`` (result is J, or dF/dt for a scalar t, reshaped),
    ``"JT"`` (result is J^T), ``"grad"`` (scalar F: result has X's shape, J = vec(result)^T),
    ``"gradT"`` (scalar F: result is the transpose of X's shape), ``"dT"`` (scalar t: result
    is (dF/dt)^T).
    """

    func: Expr
    result: Expr
    var: Symbol
    arrangement: str


def size_maps(symbols, *trees):
    """Size assignments to try: the standard one (every size different), then one where the
    outer sizes of determinants and inverses are the smallest (so that ``A X B`` with
    rectangular factors has full rank), then all sizes equal."""
    base = first_size_map(symbols, *trees)
    maps = [base]
    outer = []
    for t in trees:
        for n in t.walk():
            if isinstance(n, (Det, Inverse)):
                for name in n.arg.shape[0]:
                    if name not in outer:
                        outer.append(name)
    if outer:
        small = {name: 2 + i for i, name in enumerate(outer)}
        start = 2 + len(outer) + 1
        rest = [k for k in base if k not in small]
        maps.append({**small, **{k: start + i for i, k in enumerate(rest)}})
    maps.append({k: 3 for k in base})
    return maps


def first_size_map(symbols, *trees) -> dict[str, int]:
    """The first of :func:`size_maps` (every size different), alone: what most checks need."""
    # sizes that only constants carry (the I of x^T x I) need values too
    unit_dims = [d for t in trees for n in t.walk() if type(n) in _SIZED_CONSTANTS
                 for d in n.shape]
    return size_map(symbols, unit_dims)


#: The constants that carry sizes of their own (no node class derives from them: a type test).
_SIZED_CONSTANTS = frozenset((Identity, Ones, Zero, Commutation))


#: :func:`size_map` by the dimensions it was given (most derivations name the same few sizes:
#: a vector of n, a matrix n x m), bounded.
_SIZE_MAPS: dict = {}


def size_map(symbols, extra_dims=()) -> dict[str, int]:
    """A size for each size name of the symbols' dimensions and of ``extra_dims``: the usual
    one (:data:`SIZES`) where it is free, else the smallest free one from 2, all different (a
    new dict, from the one kept for those dimensions)."""
    dims = tuple([d for s in symbols for d in (s.rows, s.cols)]) + tuple(extra_dims)
    kept = _SIZE_MAPS.get(dims)
    if kept is None:
        if len(_SIZE_MAPS) >= 256:
            _SIZE_MAPS.clear()
        kept = _SIZE_MAPS[dims] = _new_size_map(dims)
    return dict(kept)


def _new_size_map(dims) -> dict[str, int]:
    names = []
    for d in dims:
        for n in d:
            if n not in names:
                names.append(n)
    out, extra = {}, 2
    for n in names:
        if n in SIZES and SIZES[n] not in out.values():
            out[n] = SIZES[n]
    for n in names:
        if n not in out:
            while extra in out.values() or extra in SIZES.values():
                extra += 1
            out[n] = extra
            extra += 1
    return out


def whole_number_symbols(e: Expr) -> set:
    """Names of scalars used as exponents of matrix powers (they must be whole numbers)."""
    return {n.exponent.name for n in e.walk()
            if type(n) is Power and type(n.exponent) is Symbol and not n.base.is_scalar}


def draw(symbols, sizes, rng, strategy: str, whole=frozenset()) -> dict:
    """One random instance (floats for scalars, 2-D arrays otherwise): :func:`draw_batch` of
    one."""
    return {name: float(v[0]) if v.ndim == 1 else v[0]
            for name, v in draw_batch(symbols, sizes, rng, 1, whole, strategy).items()}


def _matrices(rng, count: int, r: int, c: int, symmetric: bool, positive: bool = False):
    """``count`` random r x c matrices, ``(count, r, c)``: standard normal (entries in
    [0.5, 2] when ``positive``), symmetric when asked, and a square one shifted along the
    diagonal (by +-1.5 I, or r I when positive) so that it is rarely near singular."""
    shifts = None
    if positive:
        m = rng.uniform(0.5, 2.0, size=(count, r, c))
    elif r == c and c > 1:
        # the matrices' normals and then their shifts' in one call: the generator fills an
        # array one normal after another, so these are the draws of the two calls it replaces
        normals = rng.standard_normal(count * r * c + count)
        m, shifts = normals[:count * r * c].reshape(count, r, c), normals[count * r * c:]
    else:
        m = rng.standard_normal((count, r, c))
    if symmetric:
        m = (m + m.swapaxes(1, 2)) / 2
    if r == c and c > 1:
        # the diagonal of each matrix, a view (m is a fresh C-contiguous array) to add the
        # shift to in place: the floats of m + shift I (the off-diagonal entries plus 0 are
        # unchanged), without the identity and the product NumPy would make for it
        diagonal = m.reshape(count, r * r)[:, ::r + 1]
        if positive:
            diagonal += r
        else:
            # +-1.5 by the sign of a normal draw, + for a zero (what np.sign, with its zeros
            # set to 1, times 1.5 gave), chosen in Python: a few draws, cheaper than NumPy calls
            diagonal += [[-1.5] if z < 0 else [1.5] for z in shifts.tolist()]
    return m


try:
    # the generalized ufunc np.linalg.svd calls for the singular values: the wrapper's checks
    # and its errstate cost as much as the decomposition of a check's small matrices
    from numpy.linalg._umath_linalg import svd as _singular_values
except ImportError:  # pragma: no cover - a NumPy that moved it: through the wrapper
    _singular_values = None


def _ill_conditioned(m: np.ndarray) -> list[int]:
    """The indices of the matrices of the square stack ``m`` whose condition number exceeds
    50 (the ratio of the extreme singular values, compared as Python floats: the same
    products and comparisons as NumPy's, without an array call per step)."""
    if _singular_values is None:
        sv = np.linalg.svd(m, compute_uv=False).tolist()  # (np.linalg.cond, without its wrapper)
    else:
        sv = _singular_values(m, signature="d->d").tolist()
        for s in sv:
            if s[0] != s[0]:  # (LAPACK did not converge: NaN throughout, as the wrapper raises)
                raise np.linalg.LinAlgError("SVD did not converge")
    return [i for i, s in enumerate(sv) if not s[-1] * 50 >= s[0]]


def _finite(v) -> bool:
    if type(v) is float:
        return math.isfinite(v)
    return bool(np.isfinite(v).all())


def _amax(v) -> float:
    """The largest absolute entry (0 for an empty array); the ndarray methods, which cost a
    fraction of the ``np.max`` wrappers on the small arrays verification handles."""
    v = np.asarray(v)
    return float(np.abs(v).max()) if v.size else 0.0


def _vec(v) -> np.ndarray:
    if isinstance(v, float):
        return np.array([v])
    return np.asarray(v).reshape(-1, order="F")


def _directional_fd(f: Expr, env, var: Symbol, V, sizes, h: float = 1e-3) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _value_and_fd(f, env, var, V, sizes, h)[1]


#: The points of the stencil, in steps h: f0 first, then the four of the central difference.
_STENCIL = np.array([0.0, 1.0, -1.0, 2.0, -2.0])


#: The steps of :func:`_stencil_steps` for (draws, h), made once (read-only).
_STEPS: dict = {}


def _stencil_steps(draws: int, h: float) -> tuple:
    """The stencil's steps for ``draws`` points, tiled, ``(draws * 5,)``, and the same as
    ``(draws * 5, 1, 1)`` (to scale matrix directions): the same arrays for every check at the
    usual (draws, h), kept rather than made in five NumPy calls each time."""
    steps = _STEPS.get((draws, h))
    if steps is None:
        k = len(_STENCIL)
        flat = (_STENCIL * h).reshape(1, k).repeat(draws, axis=0).reshape(-1)
        flat.setflags(write=False)
        steps = flat, flat[:, None, None]
        if len(_STEPS) < 64:  # (refined steps h / 4^i: a handful; bounded all the same)
            _STEPS[(draws, h)] = steps
    return steps


def _central(p1, m1, p2, m2, h: float):
    """The fourth-order central difference from f(x+h), f(x-h), f(x+2h), f(x-2h)."""
    return (8 * (p1 - m1) - (p2 - m2)) / (12 * h)


def _direction(rng, var: Symbol, sizes):
    """A random direction for ``var`` (unconstrained, also for a symmetric variable)."""
    r, c = dim_size(var.rows, sizes), dim_size(var.cols, sizes)
    return float(rng.standard_normal()) if (r, c) == (1, 1) else rng.standard_normal((r, c))


def _tolerance(fd, f0) -> float:
    """How far a true derivative may be from its finite differences (first step)."""
    return _tolerance_for(_amax(fd), _amax(f0))


#: The part of the tolerance that grows with the value of the function (per unit of it): the
#: rounding of the differences at the first step (h = 1e-3) is at most about 3e-13 |f|, and the
#: finer steps widen the tolerance by what they move (the careful path); a larger share let a
#: large constant hide the derivative (``x^\top x + 10^{10}`` passed with 10 x for its
#: gradient 2 x at 1e-8 |f|).
VALUE_TOLERANCE = 1e-12


def _tolerance_for(fd_size, f0_size):
    """:func:`_tolerance` from the largest entries of the differences and of the value (floats,
    or arrays of them for a batch of draws)."""
    return RTOL * (fd_size + 1e-2) + VALUE_TOLERANCE * f0_size + 1e-9


def _value_and_fd(f: Expr, env, var: Symbol, V, sizes, h: float = 1e-3):
    """``vec f`` at ``env`` and its fourth-order central difference along ``V`` (step ``h``).
    The five points are evaluated in one batched walk (:func:`_stencil_values`); where that
    cannot be done (a singular matrix at one point, ...) point by point, as before."""
    x = env[var.name]
    one = {k: (np.array([v]) if type(v) is float else np.asarray(v)[None]) for k, v in env.items()}
    try:
        f0, fd = _stencil_values(f, one, var, np.atleast_2d(V)[None], sizes, h)
        return f0[0], fd[0]
    except (BatchUnsupported, NumericDomainError):
        pass
    e = dict(env)

    def at(t):
        e[var.name] = x + t * V
        return _vec(evaluate(f, e, sizes))
    return at(0.0), _central(at(h), at(-h), at(2 * h), at(-2 * h), h)


def _stencil_values(f: Expr, env, var: Symbol, V, sizes, h: float):
    """``vec f`` at a batch of points and its central differences along their directions:
    ``env`` holds each symbol's values for the draws (``(draws,)`` or ``(draws, r, c)``), ``V``
    the directions ``(draws, rows, cols)``; ``(f0, fd)``, each ``(draws, entries)``.  The five
    stencil points of every draw are one walk of :func:`matderiv.batch.evaluate_batch`, whose
    errors (:class:`~matderiv.batch.BatchUnsupported`, a domain error) propagate."""
    return _value_and_difference(_stencil_walk(f, env, var, V, sizes, h), len(V), h)


def _value_and_difference(points: np.ndarray, draws: int, h: float):
    """``(f0, fd)`` of :func:`_stencil_values` from the values at the stencil points."""
    flat = points.swapaxes(-1, -2).reshape(draws, len(_STENCIL), -1)
    # (f(x+h) - f(x-h) and f(x+2h) - f(x-2h) in one subtraction: the stencil alternates + and
    # -; then the floats of _central)
    diff = flat[:, 1::2] - flat[:, 2::2]
    return flat[:, 0], (8 * diff[:, 0] - diff[:, 1]) / (12 * h)


def _stencil_walk(f: Expr, env, var: Symbol, V, sizes, h: float) -> np.ndarray:
    """``f`` at the five stencil points of every draw (see :func:`_stencil_values`), one walk
    of :func:`matderiv.batch.evaluate_batch`: ``(draws * 5, rows, cols)``, draw by draw."""
    draws, k = len(V), len(_STENCIL)
    # (the ndarray methods: np.repeat and np.tile cost more in their wrappers than the copies)
    stencil = {name: v.repeat(k, axis=0) for name, v in env.items()}
    steps, matrix_steps = _stencil_steps(draws, h)
    x = stencil[var.name]
    if x.ndim == 1:
        stencil[var.name] = x + steps * V[:, 0, 0].repeat(k)
    else:
        stencil[var.name] = x + matrix_steps * V.repeat(k, axis=0)
    return evaluate_batch(f, stencil, sizes, k * draws)


def _predicted(R, arrangement: str, V, var: Symbol) -> np.ndarray:
    """What the closed form ``R`` predicts for the directional derivative along ``V``, as
    ``vec``: :func:`_predicted_batch` for one draw."""
    R = np.atleast_2d(np.asarray(R, dtype=float))
    V = np.atleast_2d(np.asarray(V, dtype=float))
    return _predicted_batch(R[None], arrangement, V[None], var)[0]


def too_large_to_check() -> MatDerivError:
    """The refusal of a derivative whose check needs more memory than there is (a Kronecker
    product of six matrices: its derivative's factors have 10^13 entries at the check's sizes)."""
    return MatDerivError("the derivative is too large to check numerically: its factors do not "
                         "fit in memory at the sizes of the check; it is not printed",
                         hint="split the expression, or name its parts and differentiate them one "
                         "by one")


def verify(check: Check, symbols, *, seed_text: str = "") -> None:
    """Raise :class:`VerificationError` unless the result matches finite differences on
    ``DRAWS`` random instances, ``DIRECTIONS`` random directions each (trying the size maps of
    :func:`size_maps` in turn until the expression is finite)."""
    try:
        return _verify(check, symbols, seed_text)
    except MemoryError:
        raise too_large_to_check() from None


def _verify(check: Check, symbols, seed_text: str) -> None:
    with np.errstate(all="ignore"):
        # (the other size maps only where the batched check at the first does not pass)
        if _verify_batched(check, symbols, first_size_map(symbols, check.func), seed_text):
            return None
        maps = size_maps(symbols, check.func)
        for i, sizes in enumerate(maps):
            try:
                return _verify_sizes(check, symbols, sizes, seed_text)
            except NotFiniteError as exc:
                if i == len(maps) - 1:
                    exc.culprit, exc.in_result = _non_finite_part(check, symbols, maps[0],
                                                                  seed_text)
                    raise


class NotFiniteError(MatDerivError):
    """Verification found no random point where the expression and its derivative are finite.
    ``culprit`` is, when one was found, the smallest part that is not finite at any of the
    points tried (``log(0)``, a division by a sum that is zero), in the derivative when
    ``in_result`` and in the expression otherwise; callers put it into words."""

    culprit = None
    in_result = False


#: The largest tree :func:`_non_finite_part` searches.
_CULPRIT_SEARCH_NODES = 300


def _non_finite_part(check: Check, symbols, sizes, seed_text: str):
    """``(node, in_result)``: the first subtree, children before parents, of the expression
    (else of its derivative) whose value is not finite at a generic random point nor at a
    positive one; ``(None, False)`` when every subtree is finite at one of them, or the tree is
    too large to search."""
    rng = np.random.default_rng(zlib.crc32(("culprit:" + seed_text).encode("utf-8")))
    whole = whole_number_symbols(check.func) | whole_number_symbols(check.result)
    envs = [draw(symbols, sizes, rng, strategy, whole) for strategy in STRATEGIES]

    def bad(node) -> bool:
        for env in envs:
            try:
                if _finite(evaluate(node, env, sizes)):
                    return False
            except NumericDomainError:
                pass
            except MatDerivError:
                return False  # cannot say: not the culprit
        return True

    for in_result, tree in ((False, check.func), (True, check.result)):
        if len(tree.nodes()) > _CULPRIT_SEARCH_NODES:
            continue  # each node is evaluated on its own: quadratic in the size of the tree
        for node in _children_first(tree):
            if bad(node):
                return node, in_result
    return None, False


def _children_first(tree: Expr):
    """The nodes of ``tree``, each after its children (post-order)."""
    stack = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            yield node
            continue
        stack.append((node, True))
        stack.extend((k, False) for k in reversed(node.children()))


def draw_batch(symbols, sizes, rng, count: int, whole=frozenset(),
               strategy: str = "generic") -> dict:
    """``count`` random instances at once: a ``(count,)`` array per scalar (whole numbers 2-4
    for ``whole`` exponents; 0.5-1.5, with a random sign for the strategy "generic"; 0.1-0.9
    for "unit") and a ``(count, rows, cols)`` array per matrix or vector (:func:`_matrices`,
    square ones redrawn until well conditioned; entries 0.1-0.9 for "unit" unless square).
    The values :func:`matderiv.batch.evaluate_batch` takes."""
    positive = strategy != "generic"
    unit = strategy == "unit"
    env = {}
    for s in symbols:
        if s.name in whole:
            env[s.name] = rng.integers(2, 5, size=count).astype(float)
            continue
        r, c = dim_size(s.rows, sizes), dim_size(s.cols, sizes)
        if s.rows == ONE and s.cols == ONE:
            v = rng.uniform(0.1, 0.9, count) if unit else rng.uniform(0.5, 1.5, count)
            env[s.name] = v if positive else v * _random_signs(rng, count)
            continue
        if unit and r != c:  # a vector of probabilities (a square matrix is drawn as "positive")
            env[s.name] = rng.uniform(0.1, 0.9, size=(count, r, c))
            continue
        m = _matrices(rng, count, r, c, s.symmetric, positive)
        if not (r == c and c > 1):  # (only a square matrix is redrawn: see _ill_conditioned)
            env[s.name] = m
            continue
        for _ in range(20):
            bad = _ill_conditioned(m)
            if not bad:
                break
            m[bad] = _matrices(rng, len(bad), r, c, s.symmetric, positive)
        env[s.name] = m
    return env


#: The two signs :func:`_random_signs` picks from.
_SIGNS = np.array((-1.0, 1.0))


def _random_signs(rng, count: int) -> np.ndarray:
    """``count`` random signs (-1.0 or 1.0): exactly ``rng.choice((-1.0, 1.0), count)``, the
    same draws from the same generator (a uniform choice with replacement is
    ``integers(0, 2, count)`` taken from the choices), without the general wrapper's checks of
    its arguments, which cost more than the draw."""
    return _SIGNS.take(rng.integers(0, 2, size=count, dtype=np.int64))


def _verify_batched(check: Check, symbols, sizes, seed_text: str) -> bool:
    """The common case of verification in two walks: ``DRAWS`` generic instances drawn at once
    (:func:`draw_batch`), the closed form evaluated at all of them as one batch and ``func`` at
    all their stencil points as another, the tolerance of :func:`_verify_sizes`.  True only
    when every draw passes outright; anything else (a point outside the domain, a difference
    that needs a finer step, a mismatch) returns False and :func:`_verify_sizes` decides with
    its own draws, so this path can only save time, never pass more.  Where the generic draws
    leave the domain (the log-determinant of a matrix drawn with a negative determinant,
    ``a^x`` with a negative), it tries positive draws, as the careful path's next attempt
    does, before handing over."""
    rng = np.random.default_rng(zlib.crc32(seed_text.encode("utf-8")))
    var = check.var
    whole = whole_number_symbols(check.func) | whole_number_symbols(check.result)
    r, c = dim_size(var.rows, sizes), dim_size(var.cols, sizes)
    for strategy in _BATCHED_STRATEGIES:
        env = draw_batch(symbols, sizes, rng, DRAWS, whole, strategy)
        directions = rng.standard_normal((DRAWS, r, c))
        try:
            results = evaluate_batch(check.result, env, sizes, DRAWS)
            if not _all_finite(results):
                continue  # outside the domain: the next strategy
            points = _stencil_walk(check.func, env, var, directions, sizes, 1e-3)
        except BatchUnsupported:
            return False
        except NumericDomainError:
            continue
        passes = _batch_passes(check, var, results, directions, points, 1e-3)
        if passes is not None:
            return passes
    return False


def _all_finite(values: np.ndarray) -> bool:
    """Whether every entry of ``values`` is finite: a few in Python floats (cheaper than two
    NumPy calls), more by the ufuncs' own reduction (see :func:`_row_maxima`)."""
    if values.size <= _FEW_ENTRIES:
        return all(map(math.isfinite, values.ravel().tolist()))
    return bool(np.logical_and.reduce(np.isfinite(values), axis=None))


#: The draws the batched check tries in turn (the careful path's first two strategies).
_BATCHED_STRATEGIES = STRATEGIES[:2]


def _batch_passes(check: Check, var: Symbol, results, directions, points, h: float) -> bool | None:
    """Whether every draw of the batch passes outright (see :func:`_verify_batched`), from the
    function's values at the stencil ``points`` (:func:`_stencil_walk`, step ``h``); None when
    the function is not finite at one of them (outside its domain)."""
    pred = _predicted_batch(results, check.arrangement, directions, var)
    draws = len(directions)
    entries = points.shape[-2] * points.shape[-1]
    if pred.shape != (draws, entries):
        return False
    if not entries:
        return False  # nothing to compare (an empty result): the careful path decides
    if draws * entries <= _FEW_ENTRIES:
        err, fd_size, f0_size = _few_row_maxima(
            pred.tolist(), points.swapaxes(-1, -2).reshape(draws, len(_STENCIL), -1).tolist(), h)
    else:
        f0, fd = _value_and_difference(points, draws, h)
        err, fd_size, f0_size = _row_maxima(pred - fd, fd, f0)
    # (a row's largest |entry| is finite exactly when all its entries are: max keeps inf and NaN)
    if not all(map(math.isfinite, fd_size + f0_size)):
        return None
    return all(e <= _tolerance_for(a, b) for e, a, b in zip(err, fd_size, f0_size))


def _row_maxima(*arrays):
    """The largest absolute entry of each row of each ``(draws, entries)`` array (all of one
    shape), as lists of floats: one reduction for all of them (each NumPy call on these tiny
    arrays costs more than its arithmetic), the same floats as ``np.abs(a).max(axis=1)``.  (The
    ufuncs' own reductions: ndarray.max, .sum and .all pass through Python wrappers in
    numpy._core._methods, which cost more than the work on these small arrays.)"""
    rows = np.maximum.reduce(np.abs(np.concatenate(arrays)), axis=1).tolist()
    n = len(arrays[0])
    return [rows[i * n:(i + 1) * n] for i in range(len(arrays))]


#: Up to how many entries (over all draws) :func:`_batch_passes` compares in Python floats:
#: a few dozen float operations cost less than the ten NumPy calls on arrays of them (past
#: some 16, measured on the corpus, they cost more).
_FEW_ENTRIES = 16


def _few_row_maxima(pred: list, points: list, h: float):
    """:func:`_row_maxima` of the deviations ``pred - fd``, of ``fd`` and of ``f0``, from the
    predictions and the stencil values as lists (per draw; per stencil point, per entry), in
    Python floats: the same IEEE operations as the arrays' (``fd`` as :func:`_central` makes it),
    and a NaN anywhere in a row its maximum, as ``np.maximum`` keeps it."""
    h12 = 12 * h
    err, fd_size, f0_size = [], [], []
    for p, (f0, p1, m1, p2, m2) in zip(pred, points):
        fd = [(8 * (a - b) - (c - d)) / h12 for a, b, c, d in zip(p1, m1, p2, m2)]
        err.append(_max_abs([x - y for x, y in zip(p, fd)]))
        fd_size.append(_max_abs(fd))
        f0_size.append(_max_abs(f0))
    return err, fd_size, f0_size


def _max_abs(values: list) -> float:
    """The largest absolute value of a non-empty list of floats, NaN when one is NaN."""
    m = 0.0
    for v in values:
        a = abs(v)
        if a > m:
            m = a
        elif a != a:
            return a
    return m


def _predicted_batch(R: np.ndarray, arrangement: str, V: np.ndarray, var: Symbol) -> np.ndarray:
    """The directional derivatives the results ``R`` ``(draws, r, c)`` predict along the
    directions ``V`` ``(draws, rows, cols)`` of the variable, as ``(draws, entries)`` (no
    entries when their shapes do not fit), per ``arrangement`` (see :class:`Check`)."""
    draws = len(R)
    if arrangement in ("grad", "gradT"):
        Rv = R.swapaxes(1, 2) if arrangement == "gradT" else R
        if Rv.shape != V.shape:
            return np.zeros((draws, 0))
        return np.add.reduce(Rv * V, axis=(1, 2)).reshape(draws, 1)  # (see _row_maxima)
    if var.rows == ONE and var.cols == ONE:  # scalar variable: dF = F' dt
        Rm = R.swapaxes(1, 2) if arrangement == "dT" else R
        return Rm.swapaxes(1, 2).reshape(draws, -1) * V.reshape(draws, 1)
    J = R if arrangement == "J" else R.swapaxes(1, 2)
    v = V.swapaxes(1, 2).reshape(draws, -1, 1)
    if J.shape[2] != v.shape[1]:
        return np.zeros((draws, 0))
    return (J @ v)[:, :, 0]


def _verify_sizes(check: Check, symbols, sizes, seed_text: str) -> None:
    rng = np.random.default_rng(zlib.crc32(seed_text.encode("utf-8")))
    var = check.var
    passed = 0
    tried = []
    whole = whole_number_symbols(check.func) | whole_number_symbols(check.result)
    for d in range(DRAWS):
        ok = False
        for attempt in range(6):
            strategy = STRATEGIES[attempt % len(STRATEGIES)]
            env = draw(symbols, sizes, rng, strategy, whole)
            try:
                R = evaluate(check.result, env, sizes)
            except NumericDomainError:
                tried.append(strategy)
                continue
            if not _finite(R):
                tried.append(strategy)
                continue
            for _ in range(DIRECTIONS):
                V = _direction(rng, var, sizes)
                try:
                    f0, fd = _value_and_fd(check.func, env, var, V, sizes)
                except NumericDomainError:
                    tried.append(strategy)
                    break
                if not (_finite(f0) and _finite(fd)):
                    tried.append(strategy)
                    break
                pred = _predicted(R, check.arrangement, V, var)
                if pred.shape != fd.shape:
                    raise VerificationError(
                        f"internal error: the derivative has {pred.size} entries per direction "
                        f"where {fd.size} were expected", hint="please report this expression")
                err = _amax(pred - fd)
                tol = _tolerance(fd, f0)
                h = 1e-3
                truncs = []
                while (err > tol or _moving(truncs, tol)) and h > 1e-5:
                    # refine the step: a true result converges with the differences; a wrong
                    # one stays away from them
                    h /= 4
                    fd_fine = _directional_fd(check.func, env, var, V, sizes, h)
                    trunc = _amax(fd_fine - fd)
                    truncs.append(trunc)
                    fd = fd_fine
                    err = _amax(pred - fd)
                    if err <= tol + 2 * trunc and trunc < 1e-2 * (1 + _amax(fd)):
                        tol = tol + 2 * trunc
                settled = 1e-3 * (1 + _amax(fd))
                if err <= tol and _moving(truncs, tol):
                    # an agreement at a step where the differences still move by more than the
                    # tolerance, and by more than at the step before, is their rounding noise
                    # meeting the result by chance (beside a large constant, x^T x + 10^{10},
                    # 3 x passed for 2 x so): this draw says nothing
                    tried.append("unsettled")
                    break
                if err > tol and (len(truncs) < 2 or max(truncs[-2:]) > settled):
                    # the differences themselves have not settled, two refinements running
                    # (sin(e^{u}) with a large u oscillates faster than any step, and two
                    # steps can agree by chance): this draw says nothing; try another
                    tried.append("unsettled")
                    break
                if err > tol:
                    raise VerificationError(
                        "internal error: the computed derivative failed its numerical check "
                        f"(deviation {err:.2e}); it is not printed",
                        hint="please report this expression; nothing wrong was typeset")
            else:
                ok = True
            if ok:
                break
        passed += ok
    if passed == 0:
        why = ("finite differences do not settle at random points" if "unsettled" in tried
               else "the expression is not finite at random points")
        strategies = ", ".join(sorted(set(tried) - {"unsettled"}))
        raise NotFiniteError(
            "could not verify the derivative numerically: " + why
            + (f" ({strategies} values tried)" if strategies else ""),
            hint=UNSETTLED_HINT if "unsettled" in tried else NOT_FINITE_HINT)


def _moving(truncs, tol) -> bool:
    """Whether the refined differences are still moving: the last refinement changed them by
    more than ``tol`` and not less than the one before (true differences converge, the
    truncation error falling 256-fold per refinement; rounding noise grows 4-fold)."""
    return bool(truncs) and truncs[-1] > tol and (len(truncs) < 2 or truncs[-1] >= truncs[-2])


def _with_unexpanded_differentials(tree: Expr, env, sizes, var: Symbol, V, h: float = 1e-3):
    """``tree`` with every ``d(U)`` replaced by a fresh symbol whose value is the directional
    finite difference of U with step ``h`` (computed from U itself, independent of the
    engine's rules)."""
    from .expr import DifferentialOf

    env = dict(env)
    counter = [0]

    def sub(n):
        if isinstance(n, DifferentialOf):
            counter[0] += 1
            name = f"__dof{counter[0]}"
            val = _directional_fd(n.arg, env, var, V, sizes, h)
            r, c = n.shape
            shape = (dim_size(r, sizes), dim_size(c, sizes))
            env[name] = float(val[0]) if shape == (1, 1) else val.reshape(shape, order="F")
            return Symbol(name, r, c, "matrix")
        return n

    return tree.map(sub), env


def verify_lines(func: Expr, var: Symbol, trees, symbols, *, seed_text: str = "") -> None:
    """Every tree must equal the differential of ``func`` along a random ``dX`` (compared as
    vec), on ``DRAWS`` random instances.  Raises :class:`VerificationError` otherwise."""
    with np.errstate(all="ignore"):
        for sizes in size_maps(symbols, func):
            try:
                if _verify_lines_sizes(func, var, trees, symbols, sizes, seed_text):
                    return
            except MemoryError:
                raise too_large_to_check() from None
    raise MatDerivError("could not check the derivation steps: at random points the expression is "
                        "not finite, or its finite differences do not settle",
                        hint="pass check=false to skip verification")


def _failing_line(func, var, trees, env, sizes, V, ref, f0_size=0.0):
    """``(line, settled)``: the first tree that differs from the differential ``ref`` (the
    directional difference of ``func`` with step 1e-3), or None.  Where one differs, the step
    is refined (to 1e-5 at most) for the reference and for the differentials the trees leave
    unexpanded alike: near a singularity a true line converges with the differences, a wrong
    one stays away from them (as in :func:`_verify_sizes`).  ``settled`` is False when the
    last refinement still moved the reference or the differing line by more than the
    tolerance: the differences have not converged at this point, which then says nothing.
    ``f0_size``, the largest entry of the function's value, widens the tolerance by the
    rounding of its differences (``0.001 x - 10^{10}``: the step 0.001 dx failed)."""
    h = 1e-3
    before = None  # (ref, value of the differing line) at the previous step
    while True:
        tol = (RTOL * (_amax(ref) + 1.0) + VALUE_TOLERANCE * f0_size) * 10 + 1e-8
        bad = None
        for t in trees:
            t2, env2 = _with_unexpanded_differentials(t, env, sizes, var, V, h)
            got = _vec(evaluate(t2, env2, sizes))
            if got.shape != ref.shape:
                return t, True
            if _amax(got - ref) > tol:
                bad = t
                break
        if bad is None:
            return None, True
        if before is not None and before[2] is bad:
            moved = max(_amax(ref - before[0]), _amax(got - before[1]))
        else:
            moved = float("inf")
        if h / 4 < 1e-5:
            return bad, moved <= tol
        before = (ref, got, bad)
        h /= 4
        ref = _directional_fd(func, env, var, V, sizes, h)


def _verify_lines_sizes(func, var, trees, symbols, sizes, seed_text) -> bool:
    rng = np.random.default_rng(zlib.crc32(("steps:" + seed_text).encode("utf-8")))
    whole = whole_number_symbols(func)
    done = 0
    for _ in range(DRAWS * 3):
        if done == DRAWS:
            break
        strategy = STRATEGIES[min(_ // DRAWS, len(STRATEGIES) - 1)]
        env = draw(symbols, sizes, rng, strategy, whole)
        V = _direction(rng, var, sizes)
        try:
            f0, ref = _value_and_fd(func, env, var, V, sizes)  # (verify_lines holds errstate)
        except NumericDomainError:
            continue
        if not (_finite(ref) and _finite(f0)):
            continue
        env[DIFF_PREFIX + var.name] = V
        try:
            bad, settled = _failing_line(func, var, trees, env, sizes, V, ref, _amax(f0))
        except NumericDomainError:
            continue  # a line is undefined here (X B of rank n < m to invert): another draw
        if bad is not None and not settled:
            continue  # the differences do not converge at this point: another draw decides
        if bad is not None:
            from .printing.latex import latex

            raise VerificationError(
                "internal error: a derivation step failed its numerical check: " + latex(bad),
                hint="please report this expression; the steps were not printed")
        done += 1
    return done > 0
