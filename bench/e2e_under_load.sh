#!/usr/bin/env bash
# The end-to-end tests (real gunicorn, Celery workers and beat) N times in a row in embedded mode
# (SQLite, filesystem broker) while busy loops keep every core busy: a race that only shows under
# load shows here. Not part of CI (it takes N times the e2e run). Usage: bench/e2e_under_load.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
burners=()
for _ in $(seq "$(nproc)"); do
  python3 -c "while True: pass" &
  burners+=($!)
done
trap 'kill "${burners[@]}" 2>/dev/null' EXIT

passed=0
for run in $(seq "$runs"); do
  start=$SECONDS
  if env -u DATABASE_URL -u CELERY_BROKER_URL .venv/bin/python -m pytest -q -p no:cacheprovider -m e2e \
      > "var/e2e-under-load-$run.log" 2>&1; then
    passed=$((passed + 1)); outcome=passed
  else
    outcome="FAILED (var/e2e-under-load-$run.log)"
  fi
  echo "run $run: $outcome in $((SECONDS - start)) s; $(tail -n 1 "var/e2e-under-load-$run.log")"
done
echo "$passed of $runs runs passed with $(nproc) busy loops"
[ "$passed" -eq "$runs" ]
