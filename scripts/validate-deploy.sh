#!/usr/bin/env bash
# Static validation of the deployment files (Dockerfile, docker-compose.yml, deploy/): no
# Docker engine, cluster, Prometheus or Grafana is needed. Run by scripts/test.sh.
#
# Installs what it needs, once, from the registries CI reaches, under target/deploy-validate/:
# - a venv with deploy/requirements-validate.txt (kubernetes-validate, jsonschema, PyYAML);
# - promtool, unpacked from Debian's `prometheus` package (not installed: no service starts);
# - a compose client: `docker compose` if the plugin is there, else `docker-compose`, else
#   Debian's `docker-compose` package is installed;
# - kubectl for `kubectl kustomize`: the machine's, else Debian's `kubernetes-client`.
# Then deploy/validate.py checks everything and names each failure. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
tools=target/deploy-validate
mkdir -p "$tools"

if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
apt_updated=
apt_update() {
  if [[ -z $apt_updated ]]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}
apt_install() {
  echo "validate-deploy: installing Debian package(s) $*"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Python packages, reinstalled only when the pinned list changes.
venv=$tools/venv
want=$(sha256sum deploy/requirements-validate.txt | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || $(cat "$venv/.requirements.sha256" 2>/dev/null) != "$want" ]]; then
  echo "validate-deploy: installing deploy/requirements-validate.txt into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r deploy/requirements-validate.txt
  echo "$want" >"$venv/.requirements.sha256"
fi

# promtool: Debian's prometheus package, unpacked.
promtool=$tools/prometheus/usr/bin/promtool
if [[ ! -x $promtool ]]; then
  echo "validate-deploy: unpacking promtool from Debian's prometheus package"
  rm -f "$tools"/prometheus_*.deb
  if ! (cd "$tools" && apt-get download -qq prometheus 2>/dev/null); then
    apt_update
    (cd "$tools" && apt-get download -qq prometheus 2>/dev/null)
  fi
  dpkg-deb -x "$tools"/prometheus_*.deb "$tools/prometheus"
  rm -f "$tools"/prometheus_*.deb
fi

# The compose client.
if docker compose version >/dev/null 2>&1; then
  compose="docker compose"
else
  command -v docker-compose >/dev/null || apt_install docker-compose
  compose="docker-compose"
fi

# kubectl, for kustomize.
command -v kubectl >/dev/null || apt_install kubernetes-client

echo "validate-deploy: checking Dockerfile, docker-compose.yml and deploy/"
status=0
"$venv/bin/python" deploy/validate.py --promtool "$promtool" --compose "$compose" --kubectl kubectl || status=$?
if ((status)); then
  echo "validate-deploy: FAILED ($((SECONDS - started)) s)" >&2
  exit "$status"
fi
echo "validate-deploy: all checks passed ($((SECONDS - started)) s)"
