# shellcheck shell=bash
# Shared helpers for scripts/local-cluster.sh and scripts/local-prometheus.sh.
# Source it; it defines functions and STATE only and has no side effects.
#
# Callers set FSC_LOG_PREFIX (e.g. "[local-cluster]") before using fsc_log/fsc_die.

STATE="${FORECASTSCALER_STATE:-/tmp/forecastscaler-local}"
# shellcheck disable=SC2034 # used by the scripts that source this file
LOG_DIR="$STATE/logs"
FSC_LOG_PREFIX="${FSC_LOG_PREFIX:-[forecastscaler]}"

fsc_log() { echo "$FSC_LOG_PREFIX $*" >&2; }
fsc_die() { echo "$FSC_LOG_PREFIX ERROR: $*" >&2; exit 1; }

# fsc_ensure_pkg BINARY DEBIAN_PACKAGE: apt-get install the package unless BINARY is on PATH.
fsc_ensure_pkg() {
  local bin="$1" pkg="$2"
  command -v "$bin" >/dev/null 2>&1 && return 0
  fsc_log "$bin not found; installing Debian package $pkg"
  export DEBIAN_FRONTEND=noninteractive
  # etcd-server and prometheus ship init scripts that would start system-wide daemons (on
  # 0.0.0.0:9090 and :2379) right after install; a policy-rc.d that exits 101 forbids that, as
  # in Debian container images. Only add one for the install if the machine has none.
  local policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from forecastscaler scripts/lib.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  if ! apt-get install -y -qq --no-install-recommends "$pkg" >&2; then
    # A fresh machine may have no package lists yet.
    apt-get update -qq >&2 || fsc_log "apt-get update reported errors (continuing)"
    apt-get install -y -qq --no-install-recommends "$pkg" >&2 || rc=$?
  fi
  [ "$added_policy" = 0 ] || rm -f "$policy"
  [ "$rc" = 0 ] || fsc_die "apt-get install $pkg failed"
  command -v "$bin" >/dev/null 2>&1 || fsc_die "installed $pkg but $bin is still not on PATH"
}

# fsc_pid_running PIDFILE EXE_NAME: true if the pid in PIDFILE is alive and is EXE_NAME
# (checked via /proc/PID/exe so a recycled pid is not mistaken for our process).
fsc_pid_running() {
  local pidfile="$1" name="$2" pid exe
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -d "/proc/$pid" ] || return 1
  # A zombie is not running.
  [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != "Z" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [ "$(basename "${exe% (deleted)}")" = "$name" ]
}

# fsc_port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
# Uses bash's /dev/tcp so it needs no ss/netstat on a fresh machine.
fsc_port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# fsc_require_free_port PORT WHAT: die if PORT is already taken (by something that is not ours).
fsc_require_free_port() {
  local port="$1" what="$2"
  if fsc_port_open "$port"; then
    local who=""
    if command -v ss >/dev/null 2>&1; then
      who=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1)
    fi
    fsc_die "port 127.0.0.1:$port (for $what) is already in use by another process${who:+ ($who)}; stop it or choose another port"
  fi
}

# fsc_start_bg NAME PIDFILE LOGFILE CMD...: start CMD detached (own session, no stdin,
# output appended to LOGFILE) and record its pid. setsid does not fork here because a
# background job of a non-interactive shell is not a process-group leader, so $! is the
# daemon itself.
fsc_start_bg() {
  local name="$1" pidfile="$2" logfile="$3"
  shift 3
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  echo "---- $(date -u +%Y-%m-%dT%H:%M:%SZ) starting $name: $*" >>"$logfile"
  # 9>&-: do not hand the fsc_lock descriptor to the daemon, or the lock would outlive us.
  setsid nohup "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
}

# fsc_stop_pid NAME PIDFILE EXE_NAME [TIMEOUT_S]: SIGTERM, wait, then SIGKILL.
fsc_stop_pid() {
  local name="$1" pidfile="$2" exe="$3" timeout="${4:-20}" pid i
  if ! fsc_pid_running "$pidfile" "$exe"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  fsc_log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    fsc_pid_running "$pidfile" "$exe" || { rm -f "$pidfile"; return 0; }
    sleep 0.1
  done
  fsc_log "$name did not exit within ${timeout}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    fsc_pid_running "$pidfile" "$exe" || break
    sleep 0.1
  done
  rm -f "$pidfile"
}

# fsc_wait_for TIMEOUT_S DESCRIPTION CMD...: poll CMD (every 0.5s) until it succeeds.
# Returns 1 on timeout (callers print a log tail and die).
fsc_wait_for() {
  local timeout="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fsc_log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# fsc_tail_log LOGFILE [LINES]: print the end of a log to stderr for diagnosis.
fsc_tail_log() {
  local logfile="$1" lines="${2:-40}"
  if [ -f "$logfile" ]; then
    echo "$FSC_LOG_PREFIX ---- last $lines lines of $logfile ----" >&2
    tail -n "$lines" "$logfile" >&2
    echo "$FSC_LOG_PREFIX ---- end of $logfile ----" >&2
  else
    echo "$FSC_LOG_PREFIX (no log at $logfile)" >&2
  fi
}

# fsc_lock NAME: serialize up/down of one service across concurrent callers (e.g. parallel test
# sessions each running "up"; the first "up" may build Kubernetes for ~10 minutes). The lock is
# held on fd 9 until the script exits.
fsc_lock() {
  mkdir -p "$STATE"
  exec 9>>"$STATE/.$1.lock"
  flock -w 900 9 || fsc_die "timed out waiting for another $1 up/down to finish ($STATE/.$1.lock)"
}
