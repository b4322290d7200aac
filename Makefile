# matderiv — developer tasks.  Everything runs from .venv/ and node_modules/ in the project
# root; nothing is activated, every tool is called by its .venv/bin/ path.

PYTHON   ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
NODESTAMP := node_modules/.installed

.PHONY: install test demo bench clean

install: $(STAMP) $(NODESTAMP)

# Re-run pip only when the package metadata changes (or .venv was deleted).
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# KaTeX for the render checks in tests/renderers.py.
$(NODESTAMP): package.json $(wildcard package-lock.json)
	npm install --no-audit --no-fund --loglevel=error
	touch $@

test: install
	$(VPY) -m pytest -q

demo: install
	$(VENV)/bin/matderiv diff 'x^T A x' --wrt x
	$(VENV)/bin/matderiv diff '\log\det X' --wrt X
	$(VENV)/bin/matderiv diff '\|X w - y\|^2' --wrt w
	$(VENV)/bin/matderiv diff 'a^\top X b' --wrt X --layout numerator

bench: install
	$(VPY) bench/derive.py

clean:
	rm -rf $(VENV) node_modules build dist examples/build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
