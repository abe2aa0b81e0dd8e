#!/usr/bin/env bash
# One install recipe for the container (runtime) and for CI and developers (test).
# The Dockerfile runs `install.sh runtime`; .ci/run and `make test` run `install.sh test`.
set -euo pipefail
what="${1:-runtime}"
here="$(cd "$(dirname "$0")/.." && pwd)"

# Test peers from Debian: a PostgreSQL server, PgBouncer, nginx/haproxy/wrk for the switch benchmark,
# and the Prometheus Pushgateway.
debian_test_packages="postgresql pgbouncer nginx-light wrk haproxy prometheus-pushgateway"

need_apt=""
if [ "$what" = "test" ]; then
  for pkg in $debian_test_packages; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt="$need_apt $pkg"
  done
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

extras=""
[ "$what" = "test" ] && extras="[test,lint,demo]"
[ "$what" = "demo" ] && extras="[demo]"
python3 -m pip install --disable-pip-version-check --no-cache-dir -q -e "${here}${extras}"
