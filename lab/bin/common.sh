# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# Shared paths and helpers for the lab scripts (sourced, not run).
# Paths are machine-wide so every checkout on this machine shares one engine and one cache.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB_ROOT="$(cd "$LAB_DIR/.." && pwd)"
# Runtime: engine socket, pidfiles, exec-root (short path: unix socket paths are limited to 108 bytes).
LAB_RUN=${LAB_RUN:-/run/textbook-lab}
# Persistent: the engine's data root (images survive between runs), pebble's TLS material.
LAB_VAR=${LAB_VAR:-/var/lib/textbook-lab}
# Caches: root-tree tarballs keyed by recipe hash, apt archives shared by lab hosts, VM base disks.
LAB_CACHE=${LAB_CACHE:-/var/cache/textbook-lab}
# Per-checkout state: VM overlay, SSH key, generated inventories (gitignored).
LAB_STATE="$LAB_DIR/.state"
# Files lab hosts see read-only at /usr/local/share/textbook-lab (pebble CAs).
LAB_SHARE="$LAB_VAR/share"
LAB_NETWORK=${LAB_NETWORK:-textbook-lab}
export DOCKER_HOST=${DOCKER_HOST:-unix://$LAB_RUN/docker.sock}

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }

# engine_up: true when the lab's dockerd answers on its socket.
engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# pid_alive FILE: the pid recorded in FILE is a running process.
pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

