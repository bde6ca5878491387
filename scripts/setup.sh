#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine, run as root by `make run` / `make test`.
# Installs the Debian packages Corral's tests use and a virtualenv with Corral in it.
# Quick when everything is already there: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Debian packages the test suite drives (kept in one list so docs and CI agree).
DEB_PACKAGES=(util-linux procps busybox-static libseccomp2 nftables lxc debootstrap runc crun podman containerd user-mode-linux
              qemu-system-x86 linux-image-amd64
              docker-registry skopeo umoci apache2-utils tini)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$VENV/.corral-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating virtualenv $VENV"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    echo "$want" > "$stamp"
fi

# corral-runtime starts several times per container, and every `corral` command is a
# Python start-up: give both a launcher that skips site (.pth processing, ~3 ms) and is
# isolated from PYTHON* variables. The runtime needs nothing outside the standard library
# and its own package; `corral` also gets the venv's site-packages (pyroute2, for
# `corral network`), put on sys.path directly.
pkg_parent=$("$VENV/bin/python" -c 'import corral, os; print(os.path.dirname(os.path.dirname(corral.__file__)))')
site_dirs=$("$VENV/bin/python" -c 'import site; print(repr(site.getsitepackages()))')
write_launcher() {  # NAME MODULE FUNCTION EXTRA-PATHS
    local launcher="$VENV/bin/$1"
    if ! grep -q "corral fast launcher v3" "$launcher" 2>/dev/null; then
        cat > "$launcher" <<LAUNCHER
#!$(readlink -f "$VENV")/bin/python -IS
# corral fast launcher v3 (written by scripts/setup.sh)
import sys
sys.path.insert(0, "$pkg_parent")
sys.path += $4
from $2 import $3
sys.exit($3())
LAUNCHER
        chmod 755 "$launcher"
    fi
}
write_launcher corral-runtime corral.cli.runtime main "[]"
write_launcher corral corral.cli.main run "$site_dirs"
# Byte-compile now: the runtime must not compile its modules on the start path (and
# PYTHONDONTWRITEBYTECODE may be set in the caller's environment).
"$VENV/bin/python" -m compileall -q src >/dev/null

# The debian template's cache (corral lxc create -t debian): debootstrap from the host's
# Debian mirror here, in the set-up, so that the tests themselves download nothing.
# Quick when the cache is complete.
"$VENV/bin/python" -m corral.lxc.debian prepare bookworm amd64 >/dev/null
