# `make run` and `make test` each do the whole set-up on a fresh Debian machine (as root).
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := libspandsp2 libtiff-tools ghostscript efax kamailio fonts-dejavu-core mgetty-viewfax time postgresql poppler-utils
STAMP := $(VENV)/.installed

.PHONY: run test lint system-deps bench clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: system-deps $(STAMP)
	$(VENV)/bin/faxengine serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: system-deps $(STAMP) lint
	$(PY) -m pytest -q -p no:cacheprovider

bench: system-deps $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
