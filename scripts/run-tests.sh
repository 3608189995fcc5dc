#!/bin/sh
# Run the test suite (lint and the layer contracts first). pytest exits 5 when it collected no
# test: that is a failure here, because a green run must mean that tests ran.
set -u
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
"$venv/bin/ruff" check . || { echo "run-tests: ruff found problems (see above)" >&2; exit 1; }
out=$("$venv/bin/lint-imports" --no-cache 2>&1) || {
    echo "$out"
    echo "run-tests: import-linter found a broken layer contract (see above; pyproject.toml)" >&2
    exit 1
}
"$venv/bin/python" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no test (exit 5); check the paths and markers given" >&2
    exit 1
fi
exit "$rc"
