#!/bin/sh
# Start the sensor backend: sh start.sh [start|stop|restart|status]
# First run: creates .venv, installs requirements.txt, initialises the database.
set -eu
ROOT=$(cd "$(dirname "$0")" && pwd)
cd "$ROOT"
. "$ROOT/deploy/venv.sh"
. "$ROOT/deploy/echarts.sh"
PY="$ROOT/.venv/bin/python"
RUN="$ROOT/var/run"
LOG="$ROOT/var/log"

# name|command: every long-running process of the stack, started in this order.
SERVICES="ingest|$PY -m Pi_Sensor.server
worker|$PY -m celery -A celery_tasks worker --loglevel INFO --hostname sensors@%h
beat|$PY -m celery -A celery_tasks beat --loglevel INFO
flower|$PY -m celery_tasks.flower"

setting() {  # setting SECTION KEY: a resolved value from db_config.ini and SENSORS_* variables
    "$PY" -c "from lib.config import load; print(load().get('$1', '$2'))"
}

pid_of() {
    pidfile="$RUN/$1.pid"
    [ -f "$pidfile" ] && pid=$(cat "$pidfile") && kill -0 "$pid" 2>/dev/null && echo "$pid"
    return 0
}

start_one() {
    name=$1; shift
    if [ -n "$(pid_of "$name")" ]; then
        echo "$name: already running (pid $(pid_of "$name"))"
        return 0
    fi
    nohup "$@" >>"$LOG/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
    sleep 1
    if [ -z "$(pid_of "$name")" ]; then
        echo "$name: failed to start; last lines of $LOG/$name.log:" >&2
        tail -n 20 "$LOG/$name.log" >&2
        return 1
    fi
    echo "$name: started (pid $(pid_of "$name"), log var/log/$name.log)"
}

stop_one() {
    name=$1
    pid=$(pid_of "$name")
    if [ -z "$pid" ]; then
        echo "$name: not running"
        rm -f "$RUN/$name.pid"
        return 0
    fi
    kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.5; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$name: did not stop in 20 s, killing"
        kill -KILL "$pid"
    fi
    rm -f "$RUN/$name.pid"
    echo "$name: stopped"
}

each_service() {  # each_service ACTION: run ACTION NAME COMMAND... for every service
    echo "$SERVICES" | while IFS='|' read -r name command; do
        # shellcheck disable=SC2086  # the command is split into words on purpose
        "$1" "$name" $command
    done
}

do_start() {
    ensure_venv "$ROOT"
    mkdir -p "$RUN" "$LOG"
    "$ROOT/.venv/bin/flask" --app flask_front init-db
    ensure_echarts "$ROOT" || echo "warning: charts are still drawn, but browsers cannot show them until ECharts is installed (run sh start.sh again)" >&2
    each_service start_one
    do_status
}

status_one() {
    pid=$(pid_of "$1")
    if [ -n "$pid" ]; then echo "$1: running (pid $pid)"; else echo "$1: stopped"; fi
}

do_status() {
    each_service status_one
    if [ -x "$PY" ]; then
        host=$(setting ecs public_ip | sed 's/^$/localhost/')
        echo "ingest:    ws://$host:$(setting ports ingest)/ingest"
        echo "flower:    http://$host:$(setting ports flower)/  (user and password: $("$PY" -m celery_tasks.flower --show))"
        echo "charts:    $(setting other flask_path)"
    fi
    echo "register a device: .venv/bin/flask --app flask_front add-device NAME"
}

case "${1:-start}" in
    start) do_start ;;
    stop) each_service stop_one ;;
    restart) each_service stop_one; do_start ;;
    status) do_status ;;
    *) echo "usage: sh start.sh [start|stop|restart|status]" >&2; exit 2 ;;
esac
