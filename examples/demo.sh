#!/usr/bin/env bash
# The main job on the local default services (Kafka 127.0.0.1:9092 started here if none
# answers, PostgreSQL 127.0.0.1:5432): seed 20,000 dirty card transactions into Kafka, run
# the pipeline until it is caught up, and show what landed where.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/src/commands/stream/run.js ] || npm run build --silent
cutover() { ./bin/run.js "$@"; }   # through its shebang, with its node flags, as an installed `cutover` runs

cutover dev up
echo "== seeding Kafka"
topic=$(npx --no-install tsx examples/seed.ts)
spec=$(mktemp --suffix=.yaml)
sed "s/^  topic: demo.txn.raw/  topic: ${topic}/" examples/pipeline.yaml > "$spec"
echo "   topic ${topic}"

echo "== cutover stream run --until-idle"
cutover stream run --spec "$spec" --schema demo --until-idle --json | tee /tmp/cutover-demo-result.json

echo "== PostgreSQL"
psql "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cutover}" -X -q -c "SELECT count(*) AS txn_clean_rows, sum(amount) AS total_amount FROM demo.txn_clean" \
  -c "SELECT account_id, business_date, txn_count, amount_sum FROM demo.account_daily_totals ORDER BY amount_sum DESC LIMIT 5" 2>/dev/null \
  || echo "(psql not installed: query demo.txn_clean and demo.account_daily_totals yourself)"
rm -f "$spec"
