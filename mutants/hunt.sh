#!/usr/bin/env bash
# Hunts planted bugs: applies each mutant (a patch of the broker) to a scratch copy of this
# checkout, builds it, and runs `tumult sweep` on its hunt line's test over a few seeds.
# Each run's verdict includes the invariant monitors, so the summary shows whether a
# monitor, the history, or nothing caught the bug. Run by hand or nightly, not in CI:
# every mutant is a release build.
#
#   mutants/hunt.sh                      # every mutants/*.patch, seeds 1..10
#   SEEDS=1..40 mutants/hunt.sh raft-vote-unpersisted
#
# SEEDS (default 1..10), JOBS (default 2) and CARGO_TARGET_DIR (default: one shared
# under the scratch directory, so mutants after the first rebuild only what they touch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tumult-mutants.XXXXXX")
target=${CARGO_TARGET_DIR:-$scratch/target}
seeds=${SEEDS:-1..10}
jobs=${JOBS:-2}
if [ $# -gt 0 ]; then
    patches=()
    for name in "$@"; do patches+=("$root/mutants/$name.patch"); done
else
    patches=("$root"/mutants/*.patch)
fi
echo "scratch copies and results in $scratch"
for patch in "${patches[@]}"; do
    name=$(basename "$patch" .patch)
    args=$(sed -n 's/^# hunt: //p' "$patch")
    if [ -z "$args" ]; then
        echo "$name: no '# hunt:' line" >&2
        exit 3
    fi
    tree="$scratch/$name"
    mkdir -p "$tree"
    git -C "$root" archive HEAD | tar -x -C "$tree"
    (cd "$tree" && git apply "$patch")
    echo "== $name: tumult sweep $args --seeds $seeds"
    (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --release --quiet --bin tumult)
    # A sweep that finds the bug exits 1; that is the point here.
    (cd "$tree" && "$target/release/tumult" sweep $args --seeds "$seeds" --jobs "$jobs" > "$scratch/$name.txt" 2>&1) || true
    grep -E "seeds:|monitors:|^  seed" "$scratch/$name.txt" | head -12 || true
done
