#!/usr/bin/env bash
# Re-run every step of the spike; logs go to out/<script>.log, machine-readable results to out/<script>.json.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install c2pa-python cryptography pillow
fi
mkdir -p out
for s in s01_certs s02_sign s03_read_tamper s04_perf s05_xmp s06_hostile s07_threads_memory s08_misc; do
  echo "== $s"
  .venv/bin/python "$s.py" 2>&1 | tee "out/$s.log"
done
