#!/bin/sh
# Install mlcache into a virtualenv (default .venv, or $MLCACHE_VENV) and run the main job.
set -eu
cd "$(dirname "$0")/.."
venv=${MLCACHE_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet '.[redis]'
exec "$venv/bin/python" -m mlcache demo "$@"
