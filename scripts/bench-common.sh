# Shared by scripts/bench and scripts/bench-scaling (sourced after lib.sh): the benchmark's own
# database, and one run with the CPU each component spent in it.
# Needs: OUT_KIND (names target/bench/<OUT_KIND>-<stamp>.d, where the runs are kept).

BENCH_DB=tasknode_bench
CTL="$REPO/target/release/taskctl"
TASK=(--kind upper --payload-bytes 16)
OUT="$REPO/target/bench"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
DATA="$OUT/$OUT_KIND-$stamp.d"
mkdir -p "$DATA"

# The fleet runs on a database of its own, dropped at the end (with the nodes stopped): the
# millions of tasks a run makes are not left behind.
export TASKNODE__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$BENCH_DB"
bench_fresh_db() {
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $BENCH_DB" >/dev/null
}
bench_finish() {
  "$REPO/scripts/down" >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null 2>&1 || true
}
trap bench_finish EXIT

# run NAME ARGS…: one taskctl run into $DATA/NAME.json, with the CPU each component spent in
# it (scripts/benchlib.py reads /proc before and after).
run() {
  local name="$1"; shift
  python3 "$REPO/scripts/benchlib.py" cpu "$RUN_DIR" >"$DATA/$name.cpu0"
  "$CTL" --json "$@" >"$DATA/$name.json" || true
  python3 "$REPO/scripts/benchlib.py" cpu "$RUN_DIR" >"$DATA/$name.cpu1"
}
