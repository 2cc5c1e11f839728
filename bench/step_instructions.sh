#!/usr/bin/env bash
# Instructions per step, counted by valgrind's callgrind: unlike timings, the count is the same
# on every run, so a small regression between two versions of turnout shows up reliably.
#
#   bench/step_instructions.sh [GIT_REF]
#
# Prints the instructions per app.step() for two workloads (a growing history with an expr
# condition, and a one-action self loop) for this work tree and, given GIT_REF, for that commit.
# Each figure is (count for 12,000 steps - count for 2,000 steps) / 10,000, so start-up cancels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }

count() {  # $1 = source tree, $2 = workload, $3 = steps
    PYTHONPATH="$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$PYTHON" bench/_steps_workload.py "$2" "$3" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

per_step() {  # $1 = source tree, $2 = workload
    local few many
    few=$(count "$1" "$2" 2000)
    many=$(count "$1" "$2" 12000)
    echo $(( (many - few) / 10000 ))
}

trees=("work tree=$PWD")
if [[ $# -ge 1 ]]; then
    old=$(mktemp -d)
    trap 'rm -rf "$old"' EXIT
    git archive "$1" turnout | tar -x -C "$old"
    trees+=("$1=$old")
fi
printf '| version | history step (instructions) | self-loop step (instructions) |\n|---|---:|---:|\n'
for entry in "${trees[@]}"; do
    printf '| %s | %s | %s |\n' "${entry%%=*}" "$(per_step "${entry#*=}" hist)" "$(per_step "${entry#*=}" fixed)"
done
