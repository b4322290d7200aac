"""Shared test helpers.

- ``corpus_cases()``: the benchmark corpus cases (a list of dicts), loaded once.  It prefers
  ``<repo>/../shared/corpus/public.yaml`` (the live copy beside the repository) and falls back
  to the vendored ``tests/corpus/public.yaml``.  Usable at collection time, e.g.
  ``@pytest.mark.parametrize("case", corpus_cases(), ids=lambda c: c["id"])``.
- ``corpus_dir()``: the directory it came from (``score.py`` lives beside it).
- fixture ``corpus`` (session scope): the same list.
- ``fd_gradient(f, X)``, ``fd_jacobian(f, x)``: central finite differences (step 1e-6) of a
  scalar function of an array, and the numerator Jacobian of a vector function of a vector:
  the references tests compare the engine's numbers with.
- the results cache of matderiv (``MATDERIV_CACHE_DIR``) points to a temporary directory for
  the whole session, set before collection and inherited by subprocesses, so that no test
  reads or writes the user's ``~/.cache/matderiv``.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIRS = (ROOT.parent / "shared" / "corpus", ROOT / "tests" / "corpus")


def corpus_dir() -> Path:
    for d in CORPUS_DIRS:
        if (d / "public.yaml").is_file():
            return d
    raise FileNotFoundError("no public.yaml in " + " or ".join(map(str, CORPUS_DIRS)))


@lru_cache(maxsize=1)
def _load_corpus() -> tuple:
    import yaml

    with open(corpus_dir() / "public.yaml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    items = data["cases"] if isinstance(data, dict) else data
    return tuple(items)


def corpus_cases() -> list[dict]:
    """A fresh (deep) copy of the corpus cases, so that a test may modify what it gets."""
    return copy.deepcopy(list(_load_corpus()))


#: Sizes for random values: all different, so a transposed or mis-sized result cannot pass.
TEST_SIZES = {"n": 3, "m": 4, "p": 5, "q": 2, "r": 6, "s": 7, "k": 3, "l": 4}


def random_values(symbols, rng, equal_sizes=False):
    """(values, sizes) for typed symbols: positive entries (logs and roots stay defined),
    symmetric matrices symmetric, square ones well conditioned with a positive determinant.
    ``equal_sizes``: every size 3 (det(A X B) of rectangular factors is singular otherwise)."""
    sizes = {k: 3 for k in TEST_SIZES} if equal_sizes else TEST_SIZES
    env = {}
    for s in symbols:
        r = int(np.prod([sizes[d] for d in s.rows])) if s.rows else 1
        c = int(np.prod([sizes[d] for d in s.cols])) if s.cols else 1
        if (r, c) == (1, 1):
            env[s.name] = float(rng.uniform(0.6, 1.4))
            continue
        m = rng.uniform(0.5, 2.0, size=(r, c))
        if s.symmetric:
            m = (m + m.T) / 2
        if r == c:
            m = m + r * np.eye(r)
        env[s.name] = m
    return env, sizes


@pytest.fixture(scope="session")
def corpus() -> list[dict]:
    return corpus_cases()


_SAVED_CACHE_ENV: dict = {}


def pytest_configure(config):
    """Before collection (which may already parse expressions): every test, and every
    subprocess it starts, uses a fresh results cache of its own, never ~/.cache/matderiv."""
    import os
    import tempfile

    _SAVED_CACHE_ENV["MATDERIV_CACHE_DIR"] = os.environ.get("MATDERIV_CACHE_DIR")
    _SAVED_CACHE_ENV["dir"] = tempfile.mkdtemp(prefix="matderiv-test-cache-")
    os.environ["MATDERIV_CACHE_DIR"] = _SAVED_CACHE_ENV["dir"]


def pytest_unconfigure(config):
    import os
    import shutil

    if "dir" not in _SAVED_CACHE_ENV:
        return
    shutil.rmtree(_SAVED_CACHE_ENV.pop("dir"), ignore_errors=True)
    old = _SAVED_CACHE_ENV.pop("MATDERIV_CACHE_DIR", None)
    if old is None:
        os.environ.pop("MATDERIV_CACHE_DIR", None)
    else:
        os.environ["MATDERIV_CACHE_DIR"] = old


def fd_gradient(f, X, h=1e-6):
    """The gradient of the scalar function ``f`` at the array ``X``, by central differences."""
    X = np.asarray(X, dtype=float)
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        E = np.zeros_like(X)
        E[idx] = h
        G[idx] = (f(X + E) - f(X - E)) / (2 * h)
    return G


def fd_jacobian(f, x, h=1e-6):
    """Numerator Jacobian of a vector function of a vector, by central differences."""
    x = np.asarray(x, dtype=float)
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=1)
