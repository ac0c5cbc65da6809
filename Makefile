# CaseForum: `make run` serves the app, `make test` runs the whole suite.
# Both set up everything first: virtual environment, packages, front-end assets,
# database and demo data.

# CPython 3.12 when this machine has it (on PATH, or a pyenv version), else python3:
# under `serve --workers N` load, worker processes on CPython 3.11.7 crashed with a
# corrupted heap in 8 of 9 runs and on 3.12.1 in none (docs/deploy.md, "Python version")
PYTHON ?= $(shell for p in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV); do $$p -c '' 2>/dev/null && { echo $$p; exit; }; done; echo python3)
VENV := .venv
BIN := $(VENV)/bin
# the install stamp names the Python version, so that switching Python remakes the venv
INSTALLED := $(BIN)/.installed-$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PORT ?= 8000
HOST ?= 127.0.0.1
VENDOR := src/caseforum/static/vendor
# test-only front-end files (axe-core for the accessibility checks): never under static/
TEST_VENDOR := tests/vendor
export CASEFORUM_DATA_DIR ?= $(CURDIR)/var
OPD_PORT ?= 8765

.PHONY: run test test-fast setup assets db browser lint clean services-test bench i18n catalogues

# the interface's translations: src/caseforum/locale/<lang>/LC_MESSAGES/messages.po, compiled
# to .mo by `make setup` (the .mo files are not kept in git)
LOCALES := src/caseforum/locale
CATALOGUES := $(wildcard $(LOCALES)/*/LC_MESSAGES/messages.po)
# plugins with catalogues of their own: plugins/<name>/babel.cfg, the catalogues in the
# package's locale folder, the package's name as their domain (register_translations)
PLUGIN_I18N := $(wildcard plugins/*/babel.cfg)
PLUGIN_CATALOGUES := $(wildcard plugins/*/src/*/locale/*/LC_MESSAGES/*.po)
COMPILED := $(CATALOGUES:.po=.mo) $(PLUGIN_CATALOGUES:.po=.mo)
LANGUAGE_DIRS := $(notdir $(patsubst %/LC_MESSAGES/messages.po,%,$(CATALOGUES)))
KEYWORDS := -k Msg -k NMsg:1,2 -k CMsg:1c,2

# beside the app, the One Portal Dossier reference server (recorded Global Dossier
# answers): type US 16/123,456 in the number box to see an OPD family arrive
run: setup db
	@echo "==> Demo data, then the app on http://$(HOST):$(PORT)/ (Ctrl+C stops it; 'make reset' forgets all data)"
	$(BIN)/caseforum demo
	$(BIN)/caseforum ice demo
	$(BIN)/caseforum-opd-reference --port $(OPD_PORT) & opd=$$!; \
	trap 'kill $$opd' EXIT INT TERM; \
	CASEFORUM_PLUGINS__OPD_LINK__BASE_URL=$${CASEFORUM_PLUGINS__OPD_LINK__BASE_URL:-http://127.0.0.1:$(OPD_PORT)} \
	$(BIN)/caseforum serve --host $(HOST) --port $(PORT)

test: setup browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the inner loop: no browser, nothing marked slow, stop at the first failure (CI runs `make test`)
test-fast: setup
	$(BIN)/python -m pytest -x -q -m "not slow and not browser" $(PYTEST_ARGS)

setup: $(INSTALLED) assets catalogues
	@# byte-compile the project's own modules as pip does for every installed package:
	@# without it each start compiles ~50 modules again (a tenth of `serve`'s start-up
	@# where PYTHONDONTWRITEBYTECODE is set); only changed files are compiled again
	@$(BIN)/python -m compileall -q src plugins/*/src >/dev/null

$(INSTALLED): pyproject.toml plugins/opd_link/pyproject.toml plugins/ice_exchange/pyproject.toml
	@echo "==> Python packages into $(VENV) (the first time takes about two minutes)"
	@# a virtual environment made by another Python (an older checkout's 3.11) is made anew
	@if test -x $(BIN)/python && [ "$$($(BIN)/python -c 'import sys; print(sys.version_info[:2])')" != "$$($(PYTHON) -c 'import sys; print(sys.version_info[:2])')" ]; then \
	  echo "==> $(VENV) was made with another Python: making it again with $(PYTHON)"; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[test]' -e plugins/opd_link -e plugins/ice_exchange
	touch $@
	@echo "==> Python packages ready"

catalogues: $(COMPILED)

$(LOCALES)/%/LC_MESSAGES/messages.mo: $(LOCALES)/%/LC_MESSAGES/messages.po $(INSTALLED)
	$(BIN)/pybabel -q compile -i $< -o $@

plugins/%.mo: plugins/%.po $(INSTALLED)
	$(BIN)/pybabel -q compile -i $< -o $@

# after changing interface text: extract every marked message into messages.pot and
# bring each language's catalogue up to date (then translate what is new; a test
# fails while a catalogue lacks a translation). A new language: pybabel init -l xx
i18n: $(INSTALLED)
	$(BIN)/pybabel -q extract -F babel.cfg $(KEYWORDS) -c TRANSLATORS: --add-location=file --sort-by-file \
	  --project=CaseForum --copyright-holder="CaseForum contributors" \
	  -o $(LOCALES)/messages.pot src/caseforum
	$(BIN)/pybabel -q update -i $(LOCALES)/messages.pot -d $(LOCALES) --no-fuzzy-matching \
	  --ignore-obsolete
	@for cfg in $(PLUGIN_I18N); do \
	  pkg=$$(dirname $$(ls -d $$(dirname $$cfg)/src/*/__init__.py)); domain=$$(basename $$pkg); \
	  echo "==> $$domain"; mkdir -p $$pkg/locale; \
	  $(BIN)/pybabel -q extract -F $$cfg $(KEYWORDS) -c TRANSLATORS: --add-location=file \
	    --sort-by-file --project=$$domain -o $$pkg/locale/$$domain.pot $$pkg || exit 1; \
	  for lang in $(LANGUAGE_DIRS); do \
	    if [ -f $$pkg/locale/$$lang/LC_MESSAGES/$$domain.po ]; then \
	      $(BIN)/pybabel -q update -D $$domain -i $$pkg/locale/$$domain.pot -d $$pkg/locale -l $$lang \
	        --no-fuzzy-matching --ignore-obsolete || exit 1; \
	    else \
	      $(BIN)/pybabel -q init -D $$domain -i $$pkg/locale/$$domain.pot -d $$pkg/locale -l $$lang || exit 1; \
	    fi; \
	  done; \
	done
	$(MAKE) catalogues

ASSETS := $(VENDOR)/htmx.min.js $(VENDOR)/ws.js $(VENDOR)/swagger-ui-bundle.js $(VENDOR)/swagger-ui.css \
	$(TEST_VENDOR)/axe.min.js

assets: $(ASSETS)

# --ignore-scripts: the assets are plain files; no package's install script runs here
$(ASSETS): package-lock.json
	@echo "==> Front-end assets from the npm lock file"
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(VENDOR) $(TEST_VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/htmx-ext-ws/dist/ws.js $(VENDOR)/ws.js
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js $(VENDOR)/swagger-ui-bundle.js
	cp node_modules/swagger-ui-dist/swagger-ui.css $(VENDOR)/swagger-ui.css
	cp node_modules/axe-core/axe.min.js $(TEST_VENDOR)/axe.min.js

db: setup
	@echo "==> Database in $(CASEFORUM_DATA_DIR)"
	$(BIN)/caseforum init

# Debian's chromium for the browser tests (Playwright drives it; no browser download)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install chromium'"; exit 1; fi; }

# ruff, mypy on the typed modules listed in pyproject.toml, and the import-layer contract
lint: setup
	$(BIN)/ruff check src plugins tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

# start the demo afresh: the next `make run` makes a new database with the demo data
.PHONY: reset
reset:
	rm -rf "$(CASEFORUM_DATA_DIR)"
	@echo "==> removed $(CASEFORUM_DATA_DIR): the next 'make run' starts with fresh demo data"

clean:
	rm -rf $(VENV) node_modules $(VENDOR) $(TEST_VENDOR) var
