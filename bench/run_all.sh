#!/usr/bin/env bash
# Run every benchmark, then regenerate docs/benchmarks.md (+ docs/benchmarks.png) from
# bench/results/*.json. Sized to finish in under ~15 minutes on 2 cores:
#
#   bash bench/run_all.sh                 # the standard sizes below
#   SOAK_ARGS="--jobs 1000 --minutes 10" bash bench/run_all.sh    # the full soak (+10 min)
#   ONLY="soak report" bash bench/run_all.sh                        # a subset, in this order
#   FIRELAG_ARGS="--sizes 1000 --minutes 2" bash bench/run_all.sh  # the start-lag bench's sizes
#
# Each step's output goes to bench/results/logs/<step>.log; a failing step is reported and the
# others still run (exit 1 at the end if any failed); every bench exits non-zero when its workload
# turned out degenerate (fewer messages, runs or records than it says). Needs redis-server;
# compare.py and the PostgreSQL shim case need the local PostgreSQL server (BRIDGE_TEST_PG_ADMIN);
# firelag.py runs the real cron daemon in a private mount namespace, so it needs root.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-${PWD}/.venv/bin/python}"   # the repo's own venv (relative to this script)
[ -x "$PY" ] || { echo "no python at $PY: create .venv (README) or set PYTHON"; exit 2; }
SOAK_ARGS="${SOAK_ARGS:---jobs 300 --minutes 3}"
FIRELAG_ARGS="${FIRELAG_ARGS:---sizes 100,1000}"
STEPS="${ONLY:-dispatch firelag workercpu import fleet overhead shim observations compare boundary soak report}"
mkdir -p bench/results/logs
"$PY" -c "import matplotlib" 2>/dev/null || "$PY" -m pip install -q 'matplotlib>=3.8'

failed=()
run() {
    local name="$1"; shift
    local t0=$SECONDS
    printf '%-13s ... ' "$name"
    if "$@" >"bench/results/logs/$name.log" 2>&1; then
        echo "ok ($((SECONDS - t0)) s)"
    else
        echo "FAILED ($((SECONDS - t0)) s): see bench/results/logs/$name.log"
        failed+=("$name")
    fi
    echo "$name $((SECONDS - t0))" >>bench/results/logs/durations.txt
}

: >bench/results/logs/durations.txt
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for step in $STEPS; do
    case "$step" in
        dispatch)     run dispatch "$PY" bench/dispatch.py --repeat 2 ;;
        import)       run import "$PY" bench/import.py --big ;;
        fleet)        run fleet "$PY" bench/fleet.py ;;
        overhead)     run overhead "$PY" bench/overhead.py --runs 300 ;;
        firelag)      run firelag "$PY" bench/firelag.py $FIRELAG_ARGS ;;
        workercpu)    run workercpu "$PY" bench/worker_cpu.py --jobs 1000 --rounds 3 ;;
        shim)         run shim "$PY" bench/shim.py --runs 60 --pg ;;
        observations) run observations "$PY" bench/observations.py ;;
        compare)      run compare "$PY" bench/compare.py ;;
        boundary)     [ -f bench/boundary.py ] && run boundary "$PY" bench/boundary.py --slots 180 ;;
        soak)         run soak "$PY" bench/soak.py $SOAK_ARGS ;;
        report)       run report "$PY" bench/report.py ;;
        *)            echo "unknown step $step"; failed+=("$step") ;;
    esac
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
