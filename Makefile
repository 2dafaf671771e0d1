# One task runner. `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast test-chaos lint bench install lock clean browser dovecot messages

$(STAMP): pyproject.toml constraints.txt $(wildcard messaging/locale/*/LC_MESSAGES/samverkan.po)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "samverkan needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m messaging.i18n
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/samverkan demo

# The browser tests drive Debian's Chromium (Playwright's own download does not work here).
# Where it cannot be installed, those tests are skipped and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: could not install chromium; the browser tests will be skipped"; }

# The mailbox tests read a real IMAP server: Debian's Dovecot, started by the tests on ports of
# their own (tests/dovecot.py). Where it cannot be installed, those tests are skipped and say why.
dovecot:
	@command -v dovecot >/dev/null 2>&1 || test -x /usr/sbin/dovecot || { \
	  echo "installing Debian's dovecot-imapd for the mailbox tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null) \
	  || echo "note: could not install dovecot-imapd; the IMAP mailbox tests will be skipped"; }

# On every core: the suite waits on servers, processes and the browser as much as it computes.
test: $(STAMP) browser dovecot
	$(BIN)/python -m pytest -n auto -m "not chaos"

# Distributed mode broken on purpose (tests/e2e/test_pool_faults.py): a Prefect server on
# PostgreSQL, workers killed and stopped, the server restarted. One at a time, about ten
# minutes: each runs a server, two workers and their runs. .ci/run runs it after make test.
test-chaos: $(STAMP)
	$(BIN)/python -m pytest -p no:xdist -m chaos

# The unit and store layers (tests/unit, tests/store): no Prefect, no process of their own, no
# browser; about half a minute (see ARCHITECTURE.md, "Tests").
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto tests/unit tests/store

lint: $(STAMP)
	$(BIN)/ruff check flows messaging store tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# samverkan's own texts: gather the messages from the code and the pages into the template
# (messaging/locale/samverkan.pot) and add new ones to each language's .po, to be translated
# (README.md, "Languages"); an easy-to-read variant (sv_x_easy) holds only what differs from its
# language and is edited by hand. make install compiles them.
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F messaging/locale/babel.cfg -k N_ -k NP_:1c,2 -k tr:2 --no-location \
	  --sort-output --omit-header --project samverkan -o messaging/locale/samverkan.pot .
	for l in $$(cd messaging/locale && ls -d [a-z]* | grep -v '_x_' | grep -v '\.'); do \
	  $(BIN)/pybabel -q update -i messaging/locale/samverkan.pot -d messaging/locale -D samverkan \
	    -l $$l --no-fuzzy-matching --ignore-obsolete || exit 1; done
	$(BIN)/python -m messaging.i18n

# Refresh the pinned versions after changing dependencies in pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^samverkan' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) samverkan-demo-*
