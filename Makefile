# The two commands of the README:
#   make run   install into .venv, migrate, create demo data on first run, start web + worker + beat
#   make test  install into .venv and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test install install-dev migrate deploy-files clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt client/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py bootstrap_demo
	$(BIN)/honcho --procfile deploy/Procfile --app-root . start

# Production mode (DATABASE_URL set, as in CI's second run) refuses to start without a secret key;
# the tests get a throwaway one unless one is given.
test: install-dev
	DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-make-test-not-a-secret}" $(BIN)/python -m pytest $(PYTEST_ARGS)

# compose, Kubernetes and systemd files from deploy/Procfile (tests/test_deploy_files.py checks they match).
deploy-files: install
	$(BIN)/python -m deploy.generate

clean:
	rm -rf $(VENV) var
