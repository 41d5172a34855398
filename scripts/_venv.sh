# Sourced by scripts/dev and scripts/test with the extras they need: make .venv and install
# Warren into it when pyproject.toml changed since the last install, or when extras are
# asked for that were not installed yet. Needs only python3 (3.11+) and a package index.
#   scripts/dev:  uvloop,examples      what running needs (no test or lint tools)
#   scripts/test: dev,uvloop,examples  everything, as CI installs it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
extras=${1:?usage: source scripts/_venv.sh EXTRAS (e.g. uvloop,examples)}
stamp=.venv/.warren-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=""
if [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "$want" ]; then
  have=$(sed -n 2p "$stamp")
fi
# Keep what an earlier run installed (./scripts/test, then ./scripts/dev) in the stamp.
extras=$(printf '%s\n' "${extras//,/$'\n'}" "${have//,/$'\n'}" | sed '/^$/d' | sort -u | paste -sd,)
if [ "$extras" != "$have" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "warren: creating .venv with $("$PY" --version)" >&2
    "$PY" -m venv .venv
  fi
  echo "warren: installing Warren[$extras] into .venv, a dot per package:" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # pip's errors go to stderr as they are; pipefail keeps its exit status.
  .venv/bin/python -m pip install -e ".[$extras]" | awk '/^(Collecting|Processing|Obtaining) / { printf "."; fflush() }
    END { print "" }' >&2
  printf '%s\n%s\n' "$want" "$extras" > "$stamp"
  echo "warren: installed; the commands are in .venv/bin (warren, and with dev: pytest, ruff, mypy)" >&2
fi
