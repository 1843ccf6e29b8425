#!/bin/sh
# Install mlcache with its test dependencies into a virtualenv (default .venv, or
# $MLCACHE_VENV) and run the whole test-suite against the installed package.
# MLCACHE_NO_EXTENSIONS=1 installs and tests the pure-Python twins only.
# Extra arguments go to pytest (e.g. scripts/test.sh -x -k memory).
set -eu
cd "$(dirname "$0")/.."
venv=${MLCACHE_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet '.[dev]'
# The pytest script (not `python -m pytest`) keeps the source tree off sys.path, so the tests
# import the installed package, compiled extension included.
exec "$venv/bin/pytest" "$@"
