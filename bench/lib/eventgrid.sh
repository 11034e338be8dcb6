# bench/lib/eventgrid.sh: `bench/run eventgrid [--quick]` (sourced by bench/run after
# option parsing, with bench/lib/common.sh loaded).
#
# Event Grid: Lapis (--durability strict) against the real service's documented ingress
# limit for one custom topic (5,000 events/s; Azure's Event Grid quotas page). Azure
# documents no delivery latency, so the latency figures' "peer" is the goal the issue
# sets (p99 publish -> webhook under 20 ms at half of 50,000 events/s); say so in reports.
# One Lapis; each load is one run of bench/loadgen's `egload`, which serves W webhook
# receivers on 127.0.0.1, makes a topic with one webhook subscription per receiver
# (through the admin API; the receivers answer the validation handshake), publishes,
# waits until every acknowledged event reached every receiver, and deletes the topic:
#   1. ingest: C publishers post batches of B 1 KiB Event Grid events as fast as they
#      are answered 200 (durable); W subscriptions deliver with maxEventsPerBatch M.
#   2. latency: the same at 25,000 events/s (half the goal) in batches of 10.
#   3. unbatched: Azure's defaults (one event per publish, one per delivery), as fast
#      as answered: what an application that batches nothing gets.
# See bench/README.md for the figures.

if [ $RUN_PEER = 0 ] || [ $RUN_LAPIS = 0 ]; then
  log "note: eventgrid's peer is a documented figure, not a server; --no-peer and --no-lapis change nothing"
fi

if [ $QUICK = 1 ]; then
  DURATION=${BENCH_DURATION:-5}; WARMUP=${BENCH_WARMUP:-1}
else
  DURATION=${BENCH_DURATION:-20}; WARMUP=${BENCH_WARMUP:-2}
fi
PUBLISHERS=${BENCH_PUBLISHERS:-8}
BATCH=${BENCH_BATCH:-100}
HOOKS=${BENCH_HOOKS:-4}
HOOK_BATCH=${BENCH_HOOK_BATCH:-100}
SIZE=${BENCH_SIZE:-1024}
LATENCY_RATE=${BENCH_LATENCY_RATE:-25000}
PEER_INGRESS=5000
PEER_LATENCY_MS=20

build_tools
EGLOAD="$LOADGEN_DIR/target/release/egload"

SECONDS=0
setup_run_dir
RAW="$OUT_DIR/eventgrid-last.jsonl"
: > "$RAW"
EGLOAD_PIDFILE="$TMP_ROOT/egload.pid"
bench_cleanup() {
  local pid
  pid=$(cat "$EGLOAD_PIDFILE" 2>/dev/null || true)
  [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
}
declare -A R

LAPIS_HTTP_PORT=""
start_lapis() {
  local dir=$1 logf=$2
  LAPIS_HTTP_PORT=$(free_port)
  LAPIS_LOG_LEVEL=${LAPIS_LOG_LEVEL:-warn} "$LAPIS_BIN" serve --data-dir "$dir" --durability strict --host 127.0.0.1 \
    --queue-port 0 --http-port "$LAPIS_HTTP_PORT" --blob-port 0 --amqp-port 0 --kafka-port 0 > "$logf" 2>&1 &
  SERVER_PID=$!; SERVER_NAME=lapis
  if ! "$LOADGEN" --mode wait --url "http://127.0.0.1:$LAPIS_HTTP_PORT/health" --expect 200 --timeout 30 > /dev/null; then
    server_died "$logf"
    return 1
  fi
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# eg_load PHASE ARGS... -> JSON line (also appended to $RAW with the phase); Lapis's CPU
# ticks during the load go to $TMP_ROOT/ticks (it runs in a subshell), read by `ticks`.
eg_load() {
  local phase=$1 j t0; shift
  t0=$(cpu_ticks "$SERVER_PID")
  j=$(run_tracked "$EGLOAD_PIDFILE" "$EGLOAD" --port "$LAPIS_HTTP_PORT" --topic "bench-$phase" --size "$SIZE" \
      --warmup "$WARMUP" --duration "$DURATION" --hooks "$HOOKS" "$@") || true
  echo $(( $(cpu_ticks "$SERVER_PID") - t0 )) > "$TMP_ROOT/ticks"
  [ -n "$j" ] || j='{"error":"egload printed nothing"}'
  printf '{"server":"lapis","phase":"%s",%s\n' "$phase" "${j#\{}" >> "$RAW"
  printf '%s' "$j"
}

ticks() { cat "$TMP_ROOT/ticks" 2>/dev/null || echo 0; }

report() {
  local phase=$1 j=$2 n cores
  TICKS=$(ticks)
  if printf '%s' "$j" | grep -q '"error":"'; then
    log "   FAILED: $(printf '%s' "$j" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p')"
    return
  fi
  n=$(json_get "$j" acked_total)
  cores=$(awk -v t="$TICKS" -v hz="$(getconf CLK_TCK)" -v s="$((DURATION + WARMUP))" 'BEGIN{ if (s > 0) printf "%.2f", t / hz / s }')
  log "     published $(json_get "$j" published_eps) events/s (answered 200, durable); delivered $(json_get "$j" delivered_eps_slowest_hook) events/s" \
      "to the slowest of $HOOKS subscriptions, $(json_get "$j" delivered_eps_all_hooks) events/s to all"
  log "     every acknowledged event reached every webhook: $(printf '%s' "$j" | sed -n 's/.*"drained":\(true\|false\).*/\1/p') (in $(json_get "$j" drain_s) s after publishing stopped)"
  log "     publish -> 200 p50 $(json_get "$j" publish_ms.p50) ms, p99 $(json_get "$j" publish_ms.p99) ms;" \
      "publish -> webhook p50 $(json_get "$j" e2e_ms.p50) ms, p99 $(json_get "$j" e2e_ms.p99) ms, p99.9 $(json_get "$j" e2e_ms.p999) ms (max $(json_get "$j" e2e_ms.max))"
  log "     CPU: lapis $cores cores ($(awk -v t="$TICKS" -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" -v h="$HOOKS" 'BEGIN{ if (n > 0) printf "%.2f", t / hz * 1e6 / n }') us per event published and delivered $HOOKS times); errors $(json_get "$j" errors)"
}

step "lapis (--durability strict): topic with $HOOKS webhook subscriptions"
mkdir -p "$TMP_ROOT/lapis"
LOG_FILE="$OUT_DIR/lapis-eg.log"
start_lapis "$TMP_ROOT/lapis/data" "$LOG_FILE" || exit 1

log "   1. ingest: $PUBLISHERS publishers, batches of $BATCH x $SIZE B, as fast as answered; deliveries of up to $HOOK_BATCH events"
j=$(eg_load ingest --publishers "$PUBLISHERS" --batch "$BATCH" --hook-batch "$HOOK_BATCH" --hook-kb 1024)
report ingest "$j"
R[publish_events_per_s.lapis]=$(json_get "$j" published_eps)
R[delivered_events_per_s_per_subscription.lapis]=$(json_get "$j" delivered_eps_slowest_hook)
R[server_cpu_us_per_event.lapis]=$(awk -v t="$(ticks)" -v hz="$(getconf CLK_TCK)" -v n="$(json_get "$j" acked_total)" 'BEGIN{ if (n > 0) printf "%.2f", t / hz * 1e6 / n }')

log "   2. latency: $LATENCY_RATE events/s in batches of 10 from $((PUBLISHERS * 2)) publishers"
j=$(eg_load latency --publishers "$((PUBLISHERS * 2))" --batch 10 --rate "$LATENCY_RATE" --hook-batch "$HOOK_BATCH" --hook-kb 1024)
report latency "$j"
R[lat_e2e_p50_ms.lapis]=$(json_get "$j" e2e_ms.p50)
R[lat_e2e_p99_ms.lapis]=$(json_get "$j" e2e_ms.p99)
R[lat_publish_p99_ms.lapis]=$(json_get "$j" publish_ms.p99)
R[lat_delivered_events_per_s_per_subscription.lapis]=$(json_get "$j" delivered_eps_slowest_hook)

log "   3. unbatched (Azure's defaults): one event per publish from $((PUBLISHERS * 4)) publishers, one per delivery"
j=$(eg_load unbatched --publishers "$((PUBLISHERS * 4))" --batch 1 --hook-batch 1 --hook-kb 64)
report unbatched "$j"
R[unbatched_publish_events_per_s.lapis]=$(json_get "$j" published_eps)
R[unbatched_delivered_events_per_s_per_subscription.lapis]=$(json_get "$j" delivered_eps_slowest_hook)
R[rss_mib_end.lapis]=$(mib "$(rss_kib "$SERVER_PID")")
stop_server
cp "$LOG_FILE" "$OUT_DIR/lapis-eg.log" 2>/dev/null || true

for f in publish_events_per_s delivered_events_per_s_per_subscription lat_delivered_events_per_s_per_subscription unbatched_publish_events_per_s unbatched_delivered_events_per_s_per_subscription; do
  R[$f.peer]=$PEER_INGRESS
done
for f in lat_e2e_p50_ms lat_e2e_p99_ms lat_publish_p99_ms; do R[$f.peer]=$PEER_LATENCY_MS; done

elapsed=$SECONDS
step "summary ($([ $QUICK = 1 ] && echo quick || echo full): $HOOKS webhook subscriptions, ${DURATION}s per load after ${WARMUP}s warm-up, events of $SIZE B)"
log "run time after builds: ${elapsed}s$([ $QUICK = 1 ] && [ "$elapsed" -ge 60 ] && echo ' (OVER the 60 s quick budget)')"
log "machine: $(nproc) cores shared by Lapis, the load generator (publishers and webhooks) and anything else running: numbers are noisy."
log "raw JSON: bench/out/eventgrid-last.jsonl; server log: bench/out/lapis-eg.log"
log "peer for */s figures: Azure's documented ingress limit of one custom topic, $PEER_INGRESS events/s (above 1 is better)."
log "peer for *_ms figures: no latency is documented by Azure; the value is the issue's goal, $PEER_LATENCY_MS ms (below 1 is better)."
log "goals: publish_events_per_s >= 50,000 (ratio >= 10) with delivery keeping up; lat_e2e_p99_ms < 20 at $LATENCY_RATE events/s."
echo
print_results publish_events_per_s delivered_events_per_s_per_subscription lat_delivered_events_per_s_per_subscription \
  lat_e2e_p50_ms lat_e2e_p99_ms lat_publish_p99_ms unbatched_publish_events_per_s unbatched_delivered_events_per_s_per_subscription \
  server_cpu_us_per_event rss_mib_end
