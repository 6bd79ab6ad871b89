#!/usr/bin/env bash
# A private carbon-cache, from Debian's graphite-carbon, to try shovel
# against a real Carbon without touching the system's own:
#
#   deploy/carbon.sh start [DIR]    start one on free loopback ports, print them
#   deploy/carbon.sh stop [DIR]     stop it
#   deploy/carbon.sh status [DIR]   say whether it runs, and where
#
# DIR (default .carbon, or $CARBON_DIR) holds everything: carbon.conf, a
# storage-schemas.conf beside it (10-second points for a day, then minutes
# for a week), the whisper files, the log and ports.env (PICKLE_PORT,
# LINE_PORT, for scripts). It runs as you (carbon.conf's USER is empty),
# with tags off and without carbon's own self-metrics. Needs
# `apt-get install graphite-carbon python3-whisper`. `make carbon` and
# `make carbon-stop` call this.
set -euo pipefail

cmd=${1:-start}
dir=${2:-${CARBON_DIR:-.carbon}}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pidfile=$dir/carbon-cache.pid

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# Carbon is Python: a PYTHONPATH or PYTHONHOME meant for another Python
# (pyenv, a virtualenv) would break it.
carbon_cache() { env -u PYTHONPATH -u PYTHONHOME carbon-cache "$@"; }

free_port() {
	env -u PYTHONPATH -u PYTHONHOME /usr/bin/python3 -c \
		'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
start)
	if ! command -v carbon-cache >/dev/null; then
		echo "carbon.sh: carbon-cache not found: apt-get install graphite-carbon python3-whisper" >&2
		exit 1
	fi
	if running; then
		echo "carbon.sh: already running (pid $(cat "$pidfile")) in $dir"
		cat "$dir/ports.env"
		exit 0
	fi
	mkdir -p "$dir/whisper" "$dir/log" "$dir/lists"
	line=$(free_port)
	pickle=$(free_port)
	while [[ $pickle == "$line" ]]; do pickle=$(free_port); done
	query=$(free_port)
	cat >"$dir/carbon.conf" <<EOF
[cache]
STORAGE_DIR = $dir
LOCAL_DATA_DIR = $dir/whisper
WHITELISTS_DIR = $dir/lists
LOG_DIR = $dir/log
PID_DIR = $dir
USER =
DATABASE = whisper
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = $line
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = $pickle
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = $query
ENABLE_UDP_LISTENER = False
ENABLE_AMQP = False
ENABLE_MANHOLE = False
ENABLE_TAGS = False
CARBON_METRIC_INTERVAL = 0
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LOG_LISTENER_CONN_SUCCESS = False
ENABLE_LOGROTATION = False
EOF
	# carbon-cache reads storage-schemas.conf from its config's directory.
	cat >"$dir/storage-schemas.conf" <<EOF
[default]
pattern = .*
retentions = 10s:1d,1m:7d
EOF
	printf 'PICKLE_PORT=%s\nLINE_PORT=%s\nCARBON_DIR=%s\n' "$pickle" "$line" "$dir" >"$dir/ports.env"
	carbon_cache --config="$dir/carbon.conf" --pidfile="$pidfile" --logdir="$dir/log" start >"$dir/log/start.log" 2>&1 || {
		echo "carbon.sh: carbon-cache did not start; $dir/log/start.log says:" >&2
		cat "$dir/log/start.log" >&2
		exit 1
	}
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$pickle") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$line") 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if ! running; then
		echo "carbon.sh: carbon-cache exited; see $dir/log" >&2
		exit 1
	fi
	cat <<EOF
carbon-cache running (pid $(cat "$pidfile")), whisper files in $dir/whisper
  pickle:    127.0.0.1:$pickle
  plaintext: 127.0.0.1:$line
try:  shovel demo -H 127.0.0.1 -p $pickle --line-port $line
      shovel route --config shovel.yaml -H 127.0.0.1 -p $pickle --line-port $line
read: whisper-fetch --from=\$(( \$(date +%s) - 600 )) $dir/whisper/<path with / for .>.wsp
stop: deploy/carbon.sh stop $dir
EOF
	;;
stop)
	if ! running; then
		echo "carbon.sh: not running in $dir"
		rm -f "$pidfile"
		exit 0
	fi
	pid=$(cat "$pidfile")
	kill "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
	fi
	rm -f "$pidfile"
	echo "carbon-cache stopped; its whisper files stay in $dir/whisper"
	;;
status)
	if running; then
		echo "carbon-cache running (pid $(cat "$pidfile")) in $dir"
		cat "$dir/ports.env"
	else
		echo "carbon-cache not running in $dir"
		exit 1
	fi
	;;
*)
	echo "usage: deploy/carbon.sh start|stop|status [DIR]" >&2
	exit 2
	;;
esac
