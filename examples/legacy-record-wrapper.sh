#!/bin/sh
# legacy-record-wrapper.sh: run one legacy job under cron-bridge's record API, for schedulers
# the bridge has no shim or plugin for (Windows Task Scheduler via WSL/Git Bash/Cygwin, a
# homegrown `while sleep` loop, an application's own timer). Point the scheduler at
#
#     legacy-record-wrapper.sh JOB_ID -- COMMAND [ARGS...]
#
# instead of COMMAND. The wrapper
#   1. asks the registry who owns the slot being fired (`bridge legacy owner`; the slot is the
#      latest slot of JOB_ID's schedule, at most 90 s before now);
#   2. when Celery owns it: records a stand-down and exits 0 without running anything;
#   3. otherwise runs COMMAND (its output still goes to this script's stdout, merged with
#      stderr), then records ok/failed, the exit code, start and finish and the output
#      (`bridge legacy record`), and exits with COMMAND's exit code.
# When the registry is unreachable the command still runs (the legacy side never stops
# because the bridge is down) and the failure to record is reported on stderr.
# Environment: BRIDGE_DATABASE_URL (or a bridge config file) like every `bridge` command;
# BRIDGE=/path/to/bridge if `bridge` is not on PATH.
set -u

if [ $# -lt 3 ] || [ "$2" != "--" ]; then
    echo "usage: $0 JOB_ID -- COMMAND [ARGS...]" >&2
    exit 64
fi
job=$1
shift 2
bridge=${BRIDGE:-bridge}
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

fired=$(now)
answer=$("$bridge" legacy owner --job "$job" --at "$fired" 2>/dev/null) || answer="unknown $fired"
owner=${answer%% *}
slot=${answer#* }

if [ "$owner" = "celery" ]; then
    "$bridge" legacy record --job "$job" --slot "$slot" --status stood-down >/dev/null ||
        echo "cron-bridge: could not record the stand-down of $job at $slot" >&2
    exit 0
fi

tmp=$(mktemp -d) || exit 70
trap 'rm -rf "$tmp"' EXIT
started=$(now)
{ "$@"; echo $? >"$tmp/rc"; } 2>&1 | tee "$tmp/output"
finished=$(now)
rc=$(cat "$tmp/rc" 2>/dev/null || echo 127)
status=ok
[ "$rc" -eq 0 ] || status=failed

"$bridge" legacy record --job "$job" --slot "$slot" --status "$status" --exit-code "$rc" \
    --started "$started" --finished "$finished" --output-file "$tmp/output" >/dev/null ||
    echo "cron-bridge: could not record the run of $job at $slot (owner: $owner)" >&2
exit "$rc"
