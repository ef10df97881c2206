#!/usr/bin/env bash
# A/B of the whole Table 1 pipeline: an older commit against the working tree, interleaved
# (old, new, old, new, ...) so that both see the same moments of a shared host.
#
#   bash benchmarks/ab_table1.sh OLD_COMMIT [ROUNDS] [-- TABLE1 ARGS]
#   bash benchmarks/ab_table1.sh 7d6af89 2 -- --protocols paper --seeds 100 --steps 600
#
# Needs the venv of the README active. OLD_COMMIT is checked out in a temporary worktree and its
# extension built in place there (about 1.5 min on 2 cores). Prints one line per run: wall seconds
# and the training seconds summed over the units (`train_seconds` in the unit files), which
# leave out start-up, WAE, evaluation and plots.
set -eu -o pipefail
OLD=${1:?usage: ab_table1.sh OLD_COMMIT [ROUNDS] [-- TABLE1 ARGS]}
shift
ROUNDS=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROUNDS=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--protocols paper --seeds 100 --steps 600)

NEW=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d)
trap 'git -C "$NEW" worktree remove --force "$WORK/old" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
git -C "$NEW" worktree add -q "$WORK/old" "$OLD"
(cd "$WORK/old" && python setup.py -q build_ext --inplace > "$WORK/build.log" 2>&1) \
    || { echo "building $OLD failed, see $WORK/build.log"; exit 1; }

train_seconds() {  # sum of train_seconds over a run directory's unit files
    python - "$1" <<'EOF'
import glob, json, sys
print(f"{sum(json.load(open(f))['result']['train_seconds'] for f in glob.glob(sys.argv[1] + '/*/units/*/*.json')):.1f}")
EOF
}

for i in $(seq "$ROUNDS"); do
    for v in old new; do
        src=$NEW; [ $v = old ] && src=$WORK/old
        out=$WORK/run_$v$i
        t0=$(date +%s.%N)
        (cd "$src" && PYTHONPATH="$src" python -m er_fast.app.cli table1 "${ARGS[@]}" --out "$out" --no-progress \
            > "$out.log" 2>&1) || { echo "$v run $i failed, see $out.log"; exit 1; }
        t1=$(date +%s.%N)
        printf '%s run %d: wall %.1f s, training %s s\n' "$v" "$i" "$(echo "$t1 - $t0" | bc)" "$(train_seconds "$out")"
    done
done
