#!/bin/sh
# Start the sensor backend: sh start.sh [start|stop|restart|status]
# First run: creates .venv, installs requirements.txt, initialises the database.
# Ports, database, broker and folders come from db_config.ini and SENSORS_* variables;
# pids go to [other] var_dir/run, rotated logs to [other] var_dir/log.
set -eu
ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"
. "$ROOT/deploy/venv.sh"
. "$ROOT/deploy/echarts.sh"
PY="$ROOT/.venv/bin/python"
RUN=""
WATCH_SECONDS=3      # a new process must stay up this long to count as started
ANSWER_SECONDS=60    # and a server must answer its health URL within this
STOP_SECONDS=20      # then SIGKILL (the ingest server drains, gunicorn's workers finish, in well under this)

# name|python arguments: every long-running process of the stack, started in this order.
SERVICES="ingest|-m Pi_Sensor.server
worker|-m celery -A celery_tasks worker --loglevel INFO --hostname sensors@%h
beat|-m celery -A celery_tasks beat --loglevel INFO
flower|-m celery_tasks.flower
web|-m gunicorn -c flask_front/gunicorn_conf.py flask_front:create_app()"

# A service runs in its own session (setsid), out of reach of the terminal's signals, and
# as a process group that stop can kill whole; nohup where setsid is missing.
if command -v setsid >/dev/null 2>&1; then DETACH=setsid; else DETACH=nohup; fi

load_settings() {  # one python call sets VAR_DIR, the ports, health URLs, log rotation, ...
    [ -z "${RUN:-}" ] || return 0
    if [ ! -x "$PY" ]; then
        echo "$ROOT/.venv does not exist yet: nothing was started (run sh start.sh)" >&2
        exit 1
    fi
    values=$("$PY" -m lib.startsh settings) || { echo "error: cannot read the settings (see above)" >&2; exit 1; }
    eval "$values"
    RUN="$VAR_DIR/run"
    LOG="$VAR_DIR/log"
}

running() {  # running PID: true while PID runs (an exited child of this shell is a zombie)
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]
}

pid_of() {  # pid_of NAME: the pid in NAME.pid (service) or NAME.logpipe.pid, when it runs
    pidfile="$RUN/$1.pid"
    if [ -f "$pidfile" ] && pid=$(cat "$pidfile") && [ -n "$pid" ] && running "$pid"; then echo "$pid"; fi
    return 0
}

health_url() {  # health_url NAME: the URL that answers (200, or 503 for web) once NAME serves, if any
    case $1 in
        ingest) echo "$INGEST_HEALTH" ;;
        flower) echo "$FLOWER_HEALTH" ;;
        web) echo "$WEB_HEALTH" ;;  # 200, or 503 while the database or broker is down (lib/startsh.py)
    esac
}

start_one() {  # start_one NAME ARGS...: start NAME behind its log writer; adds it to WATCH
    name=$1; shift
    pid=$(pid_of "$name")
    if [ -n "$pid" ]; then
        echo "$name: already running (pid $pid)"
        return 0
    fi
    fifo="$RUN/$name.fifo"
    rm -f "$fifo"
    mkfifo -m 600 "$fifo"
    # The writer rotates the log; it exits at end of input, when the service and its children have.
    "$PY" -m lib.logpipe "$LOG/$name.log" --max-bytes "$LOG_MAX_BYTES" --backups "$LOG_BACKUPS" \
        <"$fifo" >/dev/null 2>>"$LOG/logpipe.err" &
    echo $! >"$RUN/$name.logpipe.pid"
    WATCH="$WATCH $name.logpipe=$!"
    $DETACH "$PY" "$@" >"$fifo" 2>&1 &
    echo $! >"$RUN/$name.pid"
    url=$(health_url "$name")
    WATCH="$WATCH $name=$!${url:+=$url}"
}

each_service() {  # each_service ACTION: run ACTION NAME ARGS... for every service, in this shell
    while IFS='|' read -r name arguments; do
        # shellcheck disable=SC2086  # the arguments are split into words on purpose
        "$1" "$name" $arguments
    done <<EOF
$SERVICES
EOF
}

wait_gone() {  # wait_gone SECONDS PID...: wait until no PID runs; false if one still does
    limit=$(($1 * 10)); shift
    i=0
    while [ $i -lt $limit ]; do
        alive=""
        for pid in "$@"; do if running "$pid"; then alive=1; fi; done
        [ -z "$alive" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}

report() {  # report NAME STATE WRITER_STATE: print what the watch found, clean up after a failure
    name=$1
    case $2/$3 in
        ok/ok) echo "$name: started (pid $(cat "$RUN/$name.pid"), log $LOG/$name.log)"; return 0 ;;
        ok/*) echo "$name: FAILED: its log writer exited (see $LOG/logpipe.err); stopping it" >&2 ;;
        died/*) echo "$name: FAILED: exited within its first $WATCH_SECONDS s" >&2 ;;
        *) echo "$name: FAILED: no answer from $(health_url "$name") within $ANSWER_SECONDS s; stopping it" >&2 ;;
    esac
    stop_pids "$name" >/dev/null  # also waits for the writer, so the log below is complete
    echo "  last lines of $LOG/$name.log:" >&2
    tail -n 20 "$LOG/$name.log" 2>/dev/null | sed 's/^/  | /' >&2
    return 1
}

do_start() {
    ensure_venv "$ROOT"
    load_settings
    mkdir -p "$RUN" "$LOG"
    "$ROOT/.venv/bin/flask" --app flask_front init-db
    ensure_echarts "$ROOT" || echo "warning: charts are still drawn, but browsers cannot show them until ECharts is installed (run sh start.sh again)" >&2
    WATCH=""
    each_service start_one
    failed=0
    if [ -n "$WATCH" ]; then
        # shellcheck disable=SC2086  # one NAME=PID[=URL] word per process
        states=$("$PY" -m lib.startsh watch --seconds "$WATCH_SECONDS" --timeout "$ANSWER_SECONDS" $WATCH) || failed=1
        while read -r name state; do
            case $name in
                ''|*.logpipe) ;;  # nothing, or a writer: reported with its service
                *) writer=$(echo "$states" | sed -n "s/^$name\.logpipe //p")
                   report "$name" "$state" "$writer" || true ;;
            esac
        done <<EOF
$states
EOF
    fi
    do_status
    if [ $failed -ne 0 ]; then
        echo "error: some processes failed to start (see above); fix that and run sh start.sh again" >&2
        exit 1
    fi
}

stop_pids() {  # stop_pids NAME...: stop these services, all at once, then their log writers
    pids=""; groups=""
    for name in "$@"; do
        pid=$(pid_of "$name")
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            pids="$pids $pid"
            [ "$DETACH" = setsid ] && groups="$groups -$pid"
        else
            echo "$name: not running"
        fi
    done
    # shellcheck disable=SC2086
    if [ -n "$pids" ] && ! wait_gone "$STOP_SECONDS" $pids; then
        echo "did not stop in $STOP_SECONDS s, killing:$pids"
        kill -KILL $pids 2>/dev/null || true
    fi
    # Anything a service left behind in its process group (e.g. worker children) goes too.
    [ -z "$groups" ] || kill -s KILL -- $groups 2>/dev/null || true
    writers=""
    for name in "$@"; do
        writer=$(pid_of "$name.logpipe")
        writers="$writers $writer"
    done
    # shellcheck disable=SC2086  # the writers finish the last lines, then exit at end of input
    if ! wait_gone 5 $writers; then kill -TERM $writers 2>/dev/null || true; fi
    for name in "$@"; do
        if [ -f "$RUN/$name.pid" ] && echo "$pids" | grep -qw -- "$(cat "$RUN/$name.pid")"; then
            echo "$name: stopped"
        fi
        rm -f "$RUN/$name.pid" "$RUN/$name.logpipe.pid" "$RUN/$name.fifo"
    done
}

names() {  # the service names, in start order
    echo "$SERVICES" | cut -d'|' -f1
}

do_stop() {
    load_settings
    # shellcheck disable=SC2046  # one word per service name
    stop_pids $(names)
}

status_one() {
    pid=$(pid_of "$1")
    if [ -n "$pid" ]; then echo "$1: running (pid $pid)"; else echo "$1: stopped"; fi
}

do_status() {
    load_settings
    each_service status_one
    echo "ingest:    $INGEST_SCHEME://$PUBLIC_HOST:$INGEST_PORT/ingest"
    echo "flower:    $FLOWER_URL  (user and password: $("$PY" -m celery_tasks.flower --show))"
    echo "web:       http://$PUBLIC_HOST:$WEB_PORT/  (API docs /api/v1/docs)"
    echo "database:  $DATABASE"
    echo "broker:    $BROKER"
    echo "charts:    $CHART_DIR"
    echo "logs:      $LOG/NAME.log (rotated at $LOG_MAX_BYTES bytes, $LOG_BACKUPS kept)"
    echo "register a device: .venv/bin/flask --app flask_front add-device NAME"
    echo "create a user:     .venv/bin/flask --app flask_front create-user NAME [--admin]"
}

case "${1:-start}" in
    start) do_start ;;
    stop) do_stop ;;
    restart) do_stop; do_start ;;
    status) do_status ;;
    *) echo "usage: sh start.sh [start|stop|restart|status]" >&2; exit 2 ;;
esac
