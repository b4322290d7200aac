# matderiv — developer tasks.  Everything runs from .venv/ and node_modules/ in the project
# root; nothing is activated, every tool is called by its .venv/bin/ path.

PYTHON   ?= python3
VENV     := .venv
VPY      := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
NODESTAMP := node_modules/.installed

.PHONY: install test demo texlive bench clean

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

test: install texlive
	$(VPY) -m pytest -q

# ------------------------------------------------------------------------------------------
# demo: every bundled example through the real tools, into examples/build/.
#   examples/NAME.md  -> build/NAME.html (pandoc -s --mathml with the pandoc-matderiv filter;
#                        MathML renders offline in any current browser)
#                     -> build/NAME.md   (matderiv process: every macro replaced in place)
#   examples/NAME.tex -> build/NAME.tex  (matderiv process) -> build/NAME.pdf (pdflatex)
# Outputs are rebuilt when the example or the engine changes.
EXAMPLES  := examples
EXBUILD   := $(EXAMPLES)/build
EX_MD     := $(wildcard $(EXAMPLES)/*.md)
EX_TEX    := $(wildcard $(EXAMPLES)/*.tex)
EX_OUT    := $(patsubst $(EXAMPLES)/%.md,$(EXBUILD)/%.html,$(EX_MD)) \
             $(patsubst $(EXAMPLES)/%.md,$(EXBUILD)/%.md,$(EX_MD)) \
             $(patsubst $(EXAMPLES)/%.tex,$(EXBUILD)/%.pdf,$(EX_TEX))
ENGINE    := $(wildcard filter/matderiv/*.py filter/matderiv/*/*.py filter/matderiv/*/*.lark)
# pandoc is the binary of the pypandoc-binary wheel (test extra), else one on PATH; `=`, not
# `:=`, so that it is looked up only after `install` has created the venv.
PANDOC     = $(shell $(VPY) -c 'import pypandoc; print(pypandoc.get_pandoc_path())' 2>/dev/null || command -v pandoc)
PANDOC_HTML := -f markdown+east_asian_line_breaks -s --mathml --toc -N -V maxwidth=60em
PDFLATEX  := pdflatex -interaction=nonstopmode -halt-on-error

demo: install
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory $(EX_OUT) && \
	echo "" && echo "demo: built in $$(( $$(date +%s) - start )) s; outputs in $(EXBUILD)/:" && \
	for f in $(EX_OUT); do echo "  $$f"; done && \
	echo "open $(abspath $(EXBUILD))/lecture-notes.html in a browser"

$(EXBUILD):
	@mkdir -p $@

$(EXBUILD)/%.html: $(EXAMPLES)/%.md $(ENGINE) $(STAMP) | $(EXBUILD)
	@echo "pandoc --filter pandoc-matderiv $< -> $@"
	@PATH="$(abspath $(VENV))/bin:$$PATH" "$(PANDOC)" $(PANDOC_HTML) --filter pandoc-matderiv $< -o $@

$(EXBUILD)/%.md: $(EXAMPLES)/%.md $(ENGINE) $(STAMP) | $(EXBUILD)
	@echo "matderiv process $< -> $@"
	@$(VENV)/bin/matderiv process $< -o $@

# pdflatex twice (cross-references); on failure the end of the log is shown.
$(EXBUILD)/%.pdf: $(EXAMPLES)/%.tex $(ENGINE) $(STAMP) | $(EXBUILD) texlive
	@echo "matderiv process $< -> $(EXBUILD)/$*.tex; pdflatex -> $@"
	@$(VENV)/bin/matderiv process $< -o $(EXBUILD)/$*.tex
	@cd $(EXBUILD) && for pass in 1 2; do \
	  $(PDFLATEX) $*.tex > /dev/null || { tail -n 30 $*.log; exit 1; }; done

# TeX Live from Debian's packages when pdflatex is missing (the paper example and its test need
# it). As root directly, otherwise through sudo when there is one.
texlive:
	@command -v pdflatex > /dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo > /dev/null 2>&1; then SUDO=sudo; \
	  else echo "pdflatex is missing: install TeX Live (texlive-latex-base, texlive-latex-recommended)" >&2; exit 1; fi; \
	  command -v apt-get > /dev/null 2>&1 || { echo "pdflatex is missing and there is no apt-get: install TeX Live" >&2; exit 1; }; \
	  echo "installing TeX Live (texlive-latex-base, texlive-latex-recommended) with apt-get"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    texlive-latex-base texlive-latex-recommended > /dev/null; }

# Figures, not pass/fail: derive vs SymPy's .diff, then pandoc with the filter vs a pass-through
# JSON filter (cold and warm results cache); about two minutes on two cores.
bench: install
	$(VPY) bench/derive.py
	$(VPY) bench/filter.py

clean:
	rm -rf $(VENV) node_modules build dist examples/build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
