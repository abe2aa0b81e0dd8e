#!/usr/bin/env bash
# Makes the project's virtual environment (.venv) with a Python >= 3.11 and prints its interpreter.
#
# A venv, not the first python3 on PATH: a stock Debian/Ubuntu Python refuses pip installs into the
# system (PEP 668, "externally managed"), and ~40 pinned packages do not belong in anyone's system
# Python. PYTHON=/path/to/python3.x picks the interpreter; VENV=dir moves the environment.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$here/.venv}"

fits() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; }

if [ -x "$venv/bin/python" ] && fits "$venv/bin/python" && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "$venv/bin/python"
  exit 0
fi

python=""
tried=""
for candidate in ${PYTHON:-} python3 python3.14 python3.13 python3.12 python3.11 python; do
  path="$(command -v "$candidate" 2>/dev/null)" || continue
  tried="$tried $path($("$path" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'))"
  if fits "$path"; then python="$path"; break; fi
done
if [ -z "$python" ]; then
  echo "deploy-orchestrator needs Python >= 3.11; found:${tried:- no python3 on PATH}." >&2
  echo "Install one (Debian/Ubuntu: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

rm -rf "$venv"
if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) as a separate package.
  minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "venv.sh: installing python${minor}-venv (ensurepip is missing)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${minor}-venv" >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${minor}-venv" >/dev/null; }
    rm -rf "$venv"
    "$python" -m venv "$venv" >/dev/null
  else
    echo "$python cannot create a virtual environment (ensurepip is missing)." >&2
    echo "Install it: sudo apt-get install python${minor}-venv   (then run make again)" >&2
    exit 1
  fi
fi
echo "$venv/bin/python"
