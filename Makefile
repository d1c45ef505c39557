# Insight Ray: `make run` sets up and runs the main job; `make test` sets up and runs every check.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser pacs-tools run test lint typecheck layers pytest bench clean

# Re-install only when the dependency pins change: later runs work offline.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint constraints.txt --editable '.[all,dev]'
	# insightray[federated]: Flower's own pins conflict with this stack (see pyproject.toml).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--constraint constraints.txt flwr grpcio grpcio-health-checking iterators \
		pycryptodome tomli tomli-w prompt-toolkit wcwidth opacus opt-einsum
	touch $(STAMP)

setup: $(STAMP)

# The browser tests drive Debian's Chromium (never a downloaded browser build).
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The PACS tests validate objects with dicom3tools' dciodvfy and talk to a real Orthanc
# (Debian's packages; the tests start and stop their own Orthanc on loopback ports).
pacs-tools:
	command -v dciodvfy >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y dicom3tools)
	command -v Orthanc >/dev/null && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y orthanc orthanc-dicomweb)

run: setup
	$(BIN)/insightray serve

test: setup browser pacs-tools lint typecheck layers pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf $(VENV) runs .mypy_cache .ruff_cache .pytest_cache
