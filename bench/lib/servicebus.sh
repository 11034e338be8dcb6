# bench/lib/servicebus.sh: `bench/run servicebus [--quick] [--no-peer] [--no-lapis]`
# (sourced by bench/run after option parsing, with bench/lib/common.sh loaded).
#
# Service Bus over AMQP 1.0: Lapis (--durability strict) vs RabbitMQ (Debian's
# rabbitmq-server, AMQP 1.0 plugin, durable quorum queues), both driven by
# bench/loadgen's `sbload` (fe2o3-amqp). See bench/README.md for the figures.

# shellcheck source=rabbitmq.sh
. "$BENCH_DIR/lib/rabbitmq.sh"

if [ $QUICK = 1 ]; then
  PAIRS=${BENCH_CONNECTIONS:-16}; DURATION=${BENCH_DURATION:-4}; WARMUP=${BENCH_WARMUP:-1}
  FILL_COUNT=${BENCH_FILL_COUNT:-100000}; FILL_TIMEOUT=${BENCH_FILL_TIMEOUT:-25}
  PEER_FILL=${BENCH_PEER_FILL:-0}
else
  PAIRS=${BENCH_CONNECTIONS:-32}; DURATION=${BENCH_DURATION:-20}; WARMUP=${BENCH_WARMUP:-2}
  FILL_COUNT=${BENCH_FILL_COUNT:-1000000}; FILL_TIMEOUT=${BENCH_FILL_TIMEOUT:-300}
  PEER_FILL=${BENCH_PEER_FILL:-1}
fi
SENDERS=${BENCH_SENDERS:-$PAIRS}
RECEIVERS=${BENCH_RECEIVERS:-$PAIRS}
FANIN_RECEIVERS=$(( SENDERS / 4 > 0 ? SENDERS / 4 : 1 ))
PREFETCH=${BENCH_PREFETCH:-100}
FILL_SENDERS=${BENCH_FILL_SENDERS:-64}
SIZE=${BENCH_SIZE:-1024}
case $FILL_COUNT in
  1000000) RSS_FIGURE=rss_mib_1m ;;
  100000) RSS_FIGURE=rss_mib_100k ;;
  *) RSS_FIGURE=rss_mib_n$FILL_COUNT ;;
esac
QUEUES=(bench-load bench-fanin bench-fill)

# ---------------------------------------------------------------- builds
build_tools
SBLOAD="$LOADGEN_DIR/target/release/sbload"
if [ $RUN_PEER = 1 ]; then
  rabbitmq_install
  log "peer: rabbitmq-server $(rabbitmq_version) (Debian), Erlang $(erlang_version)"
fi

# ---------------------------------------------------------------- run
SECONDS=0
setup_run_dir
RAW="$OUT_DIR/servicebus-last.jsonl"
: > "$RAW"
SBLOAD_PIDFILE="$TMP_ROOT/sbload.pid"
bench_cleanup() {
  # A load generator still running (the run was interrupted) goes too.
  local pid
  pid=$(cat "$SBLOAD_PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    sleep 0.2  # its caller empties the pid file when it returns: let it, before the rm
  fi
  [ -z "$RMQ_EPMD_PID" ] || rabbitmq_stop
}

# run_sbload ARGS...: sbload in the background with its pid in SBLOAD_PIDFILE, so that
# cleanup can stop it; prints its JSON line.
run_sbload() {
  run_tracked "$SBLOAD_PIDFILE" "$SBLOAD" "$@"
}
declare -A R  # R[figure.side] = value

# sb_load WHO FLAVOR PORT QUEUE SENDERS RECEIVERS -> JSON line (also appended to $RAW)
sb_load() {
  local who=$1 flavor=$2 port=$3 queue=$4 s=$5 r=$6 j
  j=$(run_sbload --mode load --flavor "$flavor" --port "$port" --queue "$queue" --senders "$s" \
      --receivers "$r" --prefetch "$PREFETCH" --duration "$DURATION" --warmup "$WARMUP" --size "$SIZE") || true
  [ -n "$j" ] || j='{"error":"sbload printed nothing"}'
  printf '{"server":"%s","load":"%s",%s\n' "$who" "$queue" "${j#\{}" >> "$RAW"
  printf '%s' "$j"
}

sb_fill() {
  local who=$1 flavor=$2 port=$3 queue=$4 j
  j=$(run_sbload --mode fill --flavor "$flavor" --port "$port" --queue "$queue" --senders "$FILL_SENDERS" \
      --count "$FILL_COUNT" --timeout "$FILL_TIMEOUT" --size "$SIZE") || true
  [ -n "$j" ] || j='{"error":"sbload printed nothing"}'
  printf '{"server":"%s","load":"fill",%s\n' "$who" "${j#\{}" >> "$RAW"
  printf '%s' "$j"
}

sb_errors() {
  local j=$1 errs
  errs=$(json_get "$j" errors)
  if [ -n "$errs" ] && [ "$errs" != 0 ]; then
    log "   ERRORS: $errs; by kind: $(printf '%s' "$j" | sed -n 's/.*"outcomes":\({[^}]*}\).*/\1/p'); reconnects $(json_get "$j" reconnects)"
    printf '%s' "$j" | sed -n 's/.*"error_samples":\(\[[^]]*\]\).*/   samples: \1/p' | cut -c1-1500
  fi
  if printf '%s' "$j" | grep -q '"error":'; then
    log "   FAILED: $(printf '%s' "$j" | sed -n 's/.*"error":"\(.*\)"}.*/\1/p')"
  fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# report_load SIDE PREFIX JSON TICKS: prints the load's figures and stores PREFIX* figures;
# TICKS is the server's CPU time (clock ticks) over the whole load, warm-up included.
report_load() {
  local side=$1 pre=$2 j=$3 ticks=$4 n cpu_us
  log "   $(json_get "$j" senders) senders, $(json_get "$j" receivers) receivers (prefetch $PREFETCH), ${DURATION}s after ${WARMUP}s warm-up:"
  log "     sent $(json_get "$j" sent_per_s) msgs/s, completed $(json_get "$j" completed_per_s) msgs/s;" \
      "end-to-end p50 $(json_get "$j" e2e_ms.p50) ms, p99 $(json_get "$j" e2e_ms.p99) ms (max $(json_get "$j" e2e_ms.max))"
  log "     send→accepted p50 $(json_get "$j" send_ms.p50) ms, p99 $(json_get "$j" send_ms.p99) ms;" \
      "backlog left $(json_get "$j" backlog) (sent $(json_get "$j" sent_total) - received $(json_get "$j" received_total), warm-up included)"
  n=$(json_get "$j" sent_total)
  cpu_us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" 'BEGIN{ if (n > 0) printf "%.0f", t / hz * 1e6 / n; }')
  log "     server CPU: $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", t / hz}') s for $n messages = ${cpu_us:-?} us per message (send + deliver + settle)"
  sb_errors "$j"
  R[${pre}send_p50_ms.$side]=$(json_get "$j" send_ms.p50)
  R[${pre}send_p99_ms.$side]=$(json_get "$j" send_ms.p99)
  R[${pre}server_cpu_us_per_msg.$side]=$cpu_us
  R[${pre}sent_msgs_per_s.$side]=$(json_get "$j" sent_per_s)
  R[${pre}completed_msgs_per_s.$side]=$(json_get "$j" completed_per_s)
  R[${pre}e2e_p50_ms.$side]=$(json_get "$j" e2e_ms.p50)
  R[${pre}e2e_p99_ms.$side]=$(json_get "$j" e2e_ms.p99)
}

# run_loads SIDE FLAVOR PORT PID: the balanced load, then the fan-in load, on server PID.
run_loads() {
  local side=$1 flavor=$2 port=$3 pid=$4 j t0
  log "   load 1 (balanced): queue bench-load"
  t0=$(cpu_ticks "$pid")
  j=$(sb_load "$side" "$flavor" "$port" bench-load "$SENDERS" "$RECEIVERS")
  report_load "$side" "" "$j" $(( $(cpu_ticks "$pid") - t0 ))
  log "   load 2 (fan-in, 4 senders per receiver): queue bench-fanin"
  t0=$(cpu_ticks "$pid")
  j=$(sb_load "$side" "$flavor" "$port" bench-fanin "$SENDERS" "$FANIN_RECEIVERS")
  report_load "$side" fanin_ "$j" $(( $(cpu_ticks "$pid") - t0 ))
}

# measure_fill SIDE FLAVOR PORT PID DIR: fills bench-fill and records PID's RSS.
measure_fill() {
  local side=$1 flavor=$2 port=$3 pid=$4 dir=$5 idle j rss hwm ok
  idle=$(rss_kib "$pid")
  j=$(sb_fill "$side" "$flavor" "$port" bench-fill)
  sleep 1
  rss=$(rss_kib "$pid"); hwm=$(hwm_kib "$pid"); ok=$(json_get "$j" sent_total)
  log "   fill: ${ok:-0} of $FILL_COUNT sent and accepted in $(json_get "$j" elapsed_s) s ($(json_get "$j" sent_per_s) msgs/s, $FILL_SENDERS senders)"
  sb_errors "$j"
  if [ "${ok:-0}" != "$FILL_COUNT" ]; then
    log "   NOTE: only ${ok:-0} of $FILL_COUNT messages were queued (timeout ${FILL_TIMEOUT}s or errors): no $RSS_FIGURE figure."
  fi
  log "   VmRSS idle $((idle / 1024)) MiB -> after fill $((rss / 1024)) MiB (peak VmHWM $((hwm / 1024)) MiB); data dir $(du -sm "$dir" | cut -f1) MiB"
  if [ "${ok:-0}" = "$FILL_COUNT" ] && [ "$rss" -gt 0 ]; then
    log "   = $(awk -v r="$rss" -v i="$idle" -v n="$ok" 'BEGIN{printf "%.0f", (r-i)*1024/n}') bytes of RSS per queued message above idle"
    R[$RSS_FIGURE.$side]=$(awk -v r="$rss" 'BEGIN{printf "%.1f", r/1024}')
  fi
}

# ---------------------------------------------------------------- peer
if [ $RUN_PEER = 1 ]; then
  step "peer: RabbitMQ $(rabbitmq_version) (Debian), AMQP 1.0 plugin, durable quorum queues"
  log "   node on 127.0.0.1 (AMQP 0-9-1 and 1.0 share the port), own epmd on 127.0.0.1, data in a temp dir;"
  log "   plugins: rabbitmq_amqp1_0 only; queues ${QUEUES[*]} declared durable with x-queue-type=quorum"
  log "   (rabbit_amqqueue:declare via rabbitmqctl eval); links on /amq/queue/<name>, SASL PLAIN guest;"
  log "   senders unsettled: the plugin confirms each message (settled 'accepted') once the quorum queue"
  log "   has it in its Ra log (fsync'd, default wal_sync_method); receivers peek-lock = unsettled, settled 'accepted'."
  dir="$TMP_ROOT/rabbitmq"; mkdir -p "$dir"
  if rabbitmq_start "$dir" "$TMP_ROOT/rabbitmq.log" && rabbitmq_declare "${QUEUES[@]}"; then
    log "   node $RMQ_NODE, AMQP port $RMQ_PORT, beam pid ${RMQ_BEAM_PID:-?}; up after ${SECONDS}s"
    run_loads peer rabbitmq "$RMQ_PORT" "$RMQ_BEAM_PID"
    if [ "$PEER_FILL" = 1 ] && [ -n "$RMQ_BEAM_PID" ]; then
      log "   resident memory of the node (beam.smp) while $FILL_COUNT messages of $SIZE B are queued in bench-fill:"
      measure_fill peer rabbitmq "$RMQ_PORT" "$RMQ_BEAM_PID" "$dir"
    else
      log "   (no peer fill: BENCH_PEER_FILL=$PEER_FILL; rabbitmq $RSS_FIGURE is n/a)"
    fi
    log "   queues at the end (name type durable messages; RabbitMQ refreshes these counts every 5 s):"
    rabbitmq_queues
  else
    log "   RabbitMQ did not start or the queues could not be declared"
  fi
  kill -0 "${SERVER_PID:-0}" 2>/dev/null || server_died "$TMP_ROOT/rabbitmq.log"
  rabbitmq_stop
  cp -r "$dir/log" "$OUT_DIR/rabbitmq-log" 2>/dev/null || true
fi

# ---------------------------------------------------------------- lapis
LAPIS_AMQP_PORT=""
start_lapis() {
  local dir=$1 logf=$2 hport cfg="$1.config.json"
  LAPIS_AMQP_PORT=$(free_port); hport=$(free_port)
  # The Service Bus emulator's Config.json format; 5 GiB so 1M x 1 KiB fits the quota.
  printf '{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[%s]}],"Logging":{"Type":"File"}}}\n' \
    "$(for q in "${QUEUES[@]}"; do printf '{"Name":"%s","Properties":{"MaxDeliveryCount":10,"MaxSizeInMegabytes":5120}},' "$q"; done | sed 's/,$//')" > "$cfg"
  LAPIS_LOG_LEVEL=${LAPIS_LOG_LEVEL:-warn} "$LAPIS_BIN" serve --data-dir "$dir" --durability strict --host 127.0.0.1 \
    --queue-port 0 --http-port "$hport" --blob-port 0 --amqp-port "$LAPIS_AMQP_PORT" --kafka-port 0 --config "$cfg" \
    > "$logf" 2>&1 &
  SERVER_PID=$!; SERVER_NAME=lapis
  if ! "$LOADGEN" --mode wait --url "http://127.0.0.1:$hport/health" --expect 200 --timeout 30 > /dev/null ||
     ! "$SBLOAD" --mode wait --flavor lapis --port "$LAPIS_AMQP_PORT" --queue bench-load --timeout 30 > /dev/null; then
    server_died "$logf"
    return 1
  fi
}

if [ $RUN_LAPIS = 1 ]; then
  step "lapis: ${LAPIS_BIN#$ROOT/} serve --durability strict --amqp-port <free> --config <queues ${QUEUES[*]}>"
  log "   SASL ANONYMOUS + CBS put-token (SAS for sb://127.0.0.1:<port>/<queue>, RootManageSharedAccessKey);"
  log "   links on the queue name; strict = a send is accepted only after fdatasync (group commit)"
  dir="$TMP_ROOT/lapis"; mkdir -p "$dir"
  if start_lapis "$dir" "$TMP_ROOT/lapis.log"; then
    run_loads lapis lapis "$LAPIS_AMQP_PORT" "$SERVER_PID"
    kill -0 "$SERVER_PID" 2>/dev/null || server_died "$TMP_ROOT/lapis.log"
  fi
  stop_server
  cp "$TMP_ROOT/lapis.log" "$OUT_DIR/lapis-sb.log" 2>/dev/null || true

  step "lapis: resident memory with $FILL_COUNT messages of $SIZE B queued (fresh server, strict durability)"
  dir="$TMP_ROOT/lapis-fill"; mkdir -p "$dir"
  if start_lapis "$dir" "$TMP_ROOT/lapis-fill.log"; then
    measure_fill lapis lapis "$LAPIS_AMQP_PORT" "$SERVER_PID" "$dir"
    kill -0 "$SERVER_PID" 2>/dev/null || server_died "$TMP_ROOT/lapis-fill.log"
  fi
  stop_server
  cp "$TMP_ROOT/lapis-fill.log" "$OUT_DIR/lapis-sb-fill.log" 2>/dev/null || true
fi

# ---------------------------------------------------------------- summary
elapsed=$SECONDS
step "summary ($([ $QUICK = 1 ] && echo quick || echo full): $SENDERS senders + $RECEIVERS receivers (fan-in: $FANIN_RECEIVERS receivers), ${DURATION}s per load after ${WARMUP}s warm-up, $SIZE B messages)"
log "run time after builds/installs: ${elapsed}s$([ $QUICK = 1 ] && [ "$elapsed" -ge 60 ] && echo ' (OVER the 60 s quick budget)')"
log "machine: $(nproc) cores shared by the servers, the load generator and anything else running: numbers are noisy."
log "raw JSON: bench/out/servicebus-last.jsonl; server logs: bench/out/lapis-sb*.log, bench/out/rabbitmq-log/"
log "ratio = lapis/peer: above 1 is better for */s figures, below 1 is better for *_ms and rss figures."
echo
print_results sent_msgs_per_s completed_msgs_per_s e2e_p50_ms e2e_p99_ms send_p50_ms send_p99_ms server_cpu_us_per_msg \
  fanin_sent_msgs_per_s fanin_completed_msgs_per_s fanin_e2e_p50_ms fanin_e2e_p99_ms fanin_send_p99_ms "$RSS_FIGURE"
