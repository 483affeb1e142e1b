# Fresh-machine setup: Debian packages and the project venv. Stamps make warm runs free.
APT_PACKAGES := postgresql postgresql-contrib docker.io debootstrap qemu-system-x86 qemu-utils \
	pebble openssh-client rsync zstd iproute2 curl ca-certificates wrk shellcheck openssl
STAMP := $(ROOT)/.cache/stamps

.PHONY: setup apt venv
setup: apt venv ## install Debian packages and the Python venv (idempotent)

apt: $(STAMP)/apt
$(STAMP)/apt: mk/setup.mk
	@mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

venv: $(STAMP)/venv
$(STAMP)/venv: pyproject.toml
	@mkdir -p $(STAMP)
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev,deploy]'
	@touch $@
