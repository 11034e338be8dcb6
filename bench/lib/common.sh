# bench/lib/common.sh: helpers shared by the benchmarks of bench/run (sourced, not run).
#
# Expects LOADGEN (path of bench/loadgen's `loadgen` binary) once builds are done.
# A benchmark sets SERVER_PID/SERVER_NAME for the one server it runs at a time, and
# may define bench_cleanup (called on exit before the temporary directory goes).

log() { printf '%s\n' "$*"; }
step() { printf '\n== %s\n' "$*"; }

SERVER_PID=""
SERVER_NAME=""

# Stops the current server: SIGTERM, then SIGKILL after 10 s (20 s for BEAM).
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local tries=${1:-100}
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 "$tries"); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$SERVER_NAME did not stop within $((tries / 10)) s of SIGTERM; SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# Makes TMP_ROOT and the exit trap that stops servers and deletes it.
setup_run_dir() {
  TMP_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/lapis-bench.XXXXXX")
  mkdir -p "$OUT_DIR"
  trap cleanup EXIT
  trap 'echo "interrupted" >&2; exit 130' INT TERM
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  if declare -F bench_cleanup > /dev/null; then bench_cleanup || true; fi
  rm -rf "$TMP_ROOT"
  exit $rc
}

# Free loopback ports, asked of the kernel.
free_port() { "$LOADGEN" --mode ports --count 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

# json_get JSON key -> top-level number; json_get JSON obj.key -> one level down.
json_get() {
  local j=$1 k=$2
  if [[ $k == *.* ]]; then
    printf '%s' "$j" | sed -n "s/.*\"${k%%.*}\":{[^}]*\"${k#*.}\":\\([0-9.eE+-]*\\).*/\\1/p"
  else
    printf '%s' "$j" | sed -n "s/.*\"$k\":\\([0-9.eE+-]*\\).*/\\1/p"
  fi
}

server_died() {
  local logf=$1
  log "   $SERVER_NAME exited early; last lines of its log:"
  tail -n 20 "$logf" | sed 's/^/     | /'
}

# print_results FIGURE... : one `RESULT <figure> lapis=<v> peer=<v> ratio=<lapis/peer>`
# line per figure, from the associative array R[figure.lapis] / R[figure.peer].
print_results() {
  local fig l p ratio
  for fig in "$@"; do
    l=${R[$fig.lapis]:-n/a}; p=${R[$fig.peer]:-n/a}
    [ -n "$l" ] || l=n/a; [ -n "$p" ] || p=n/a
    ratio=$(awk -v l="$l" -v p="$p" 'BEGIN{ if (l ~ /^[0-9.]+$/ && p ~ /^[0-9.]+$/ && p+0 > 0) printf "%.3f", l/p; else print "n/a" }')
    echo "RESULT $fig lapis=$l peer=$p ratio=$ratio"
  done
}

# run_tracked PIDFILE CMD ARGS...: CMD in the background with its pid in PIDFILE (so
# that cleanup can stop it); prints its output, returns its status.
run_tracked() {
  local pidfile=$1 pid rc=0
  shift
  "$@" 2>/dev/null &
  pid=$!
  echo "$pid" > "$pidfile"
  wait "$pid" || rc=$?
  : > "$pidfile"
  return $rc
}

# Builds the load generators (bench/loadgen, its own workspace) and, when Lapis runs,
# its release binary. Sets LOADGEN and LAPIS_BIN; the other generators sit beside
# LOADGEN.
build_tools() {
  step "build (not counted in the run time)"
  log "load generators: cargo build --release (bench/loadgen, own workspace)"
  (cd "$LOADGEN_DIR" && CARGO_TARGET_DIR="$LOADGEN_DIR/target" cargo build --release --quiet)
  LOADGEN="$LOADGEN_DIR/target/release/loadgen"
  mkdir -p "$OUT_DIR"
  LAPIS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/lapis"
  if [ "$RUN_LAPIS" = 1 ]; then
    log "lapis: cargo build --release -p lapis"
    (cd "$ROOT" && cargo build --release -p lapis --quiet)
    [ -x "$LAPIS_BIN" ] || { echo "no binary at $LAPIS_BIN" >&2; exit 1; }
  fi
}
