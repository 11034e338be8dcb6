# bench/lib/rabbitmq.sh: the RabbitMQ peer of `bench/run servicebus` (sourced).
#
# Debian's rabbitmq-server package, run as a throw-away node: every file it writes
# (config, Mnesia and Ra data, logs, the Erlang cookie) lives under one temporary
# directory; it and its own epmd listen on 127.0.0.1 only, on free ports; both are
# stopped by pid at the end. The system's rabbitmq service is never started.

RABBITMQ_LIB=/usr/lib/rabbitmq/bin
RMQ_EPMD_PID=""
RMQ_NODE=""

# Installs rabbitmq-server with apt-get if it is missing. Debian's postinst would
# start the system service (on 0.0.0.0:5672): a policy-rc.d that forbids it is put
# in place for the install when the machine has none.
rabbitmq_install() {
  if [ -x "$RABBITMQ_LIB/rabbitmq-server" ]; then return 0; fi
  log "peer: apt-get install rabbitmq-server (Debian's package; service start suppressed)"
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  local rc=0
  if ! apt-cache show rabbitmq-server > /dev/null 2>&1; then apt-get update -qq || rc=$?; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server > "$OUT_DIR/rabbitmq-install.log" 2>&1 || rc=$?
  [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ $rc != 0 ] || [ ! -x "$RABBITMQ_LIB/rabbitmq-server" ]; then
    echo "rabbitmq-server install failed (see bench/out/rabbitmq-install.log)" >&2
    return 1
  fi
}

rabbitmq_version() { dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown; }
erlang_version() { dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo unknown; }

# The environment every rabbitmq-server / rabbitmqctl call of this run gets.
rabbitmq_env() {
  local dir=$1
  export HOME="$dir/home"  # the Erlang cookie goes here, not in the caller's home
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_BASE="$dir"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/rabbit.pid"
  export RABBITMQ_NODENAME=$RMQ_NODE
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$RMQ_PORT
  export RABBITMQ_DIST_PORT=$RMQ_DIST_PORT
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=$RMQ_EPMD_PORT
  # Erlang distribution (server and CLI) on loopback only.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rabbitmqctl_() { "$RABBITMQ_LIB/rabbitmqctl" -n "$RMQ_NODE" "$@"; }

# rabbitmq_start DIR LOGFILE: writes the config, starts epmd and the node, and waits
# until an AMQP 1.0 client can connect. Sets SERVER_PID (the wrapper script, which
# stops the node on SIGTERM) and RMQ_BEAM_PID (the VM, for RSS).
rabbitmq_start() {
  local dir=$1 logf=$2
  RMQ_PORT=$(free_port); RMQ_DIST_PORT=$(free_port); RMQ_EPMD_PORT=$(free_port)
  RMQ_NODE="lapisbench$RMQ_PORT@localhost"
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  rabbitmq_env "$dir"
  : > "$RABBITMQ_CONF_ENV_FILE"
  echo '[rabbitmq_amqp1_0].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  echo '[].' > "$RABBITMQ_ADVANCED_CONFIG_FILE"
  cat > "$RABBITMQ_CONFIG_FILE" <<EOF
listeners.tcp.default = 127.0.0.1:$RMQ_PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
EOF
  epmd -address 127.0.0.1 -port "$RMQ_EPMD_PORT" > "$dir/epmd.log" 2>&1 &
  RMQ_EPMD_PID=$!
  "$RABBITMQ_LIB/rabbitmq-server" > "$logf" 2>&1 &
  SERVER_PID=$!; SERVER_NAME=rabbitmq
  if ! "$SBLOAD" --mode wait --flavor rabbitmq --port "$RMQ_PORT" --queue none --timeout 90 > /dev/null; then
    server_died "$logf"
    return 1
  fi
  RMQ_BEAM_PID=$(pgrep -P "$SERVER_PID" -x beam.smp | head -n1 || true)
}

# rabbitmq_declare QUEUE...: durable quorum queues, declared inside the node
# (rabbit_amqqueue:declare/6, as an AMQP 0-9-1 queue.declare with
# x-queue-type=quorum would), in one rabbitmqctl call.
rabbitmq_declare() {
  local names="" q
  for q in "$@"; do names="$names${names:+,}<<\"$q\">>"; done
  rabbitmqctl_ eval "[{new, _} = rabbit_amqqueue:declare(rabbit_misc:r(<<\"/\">>, queue, Q), true, false,
      [{<<\"x-queue-type\">>, longstr, <<\"quorum\">>}], none, <<\"bench\">>) || Q <- [$names]], ok." > /dev/null
}

# Prints "name type durable messages" for each queue.
rabbitmq_queues() { rabbitmqctl_ list_queues -q name type durable messages 2>/dev/null | sed 's/^/     | /'; }

# Stops the node (SIGTERM to the wrapper: it stops the VM and waits), then its epmd.
rabbitmq_stop() {
  stop_server 300
  if [ -n "$RMQ_EPMD_PID" ]; then
    kill -TERM "$RMQ_EPMD_PID" 2>/dev/null || true
    wait "$RMQ_EPMD_PID" 2>/dev/null || true
    RMQ_EPMD_PID=""
  fi
}
