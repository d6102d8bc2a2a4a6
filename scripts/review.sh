#!/usr/bin/env bash
# Pull-request review and main's shared baseline: the steps the GitHub workflows run, runnable
# as they are on any clone (README, "Reviewing a change").
#
#   scripts/review.sh pr [BASE]   restore from the remote, reproduce (only what the change touches
#                                 runs) and write review.md: params and metrics diffs against BASE
#                                 (default main), the sweep overlays and table rows that changed
#   scripts/review.sh main        restore, reproduce, verify the cache (scripts/verify.py) and
#                                 push the results and the run-cache
#
# The remote comes from the environment only: DVC_REMOTE_URL, DVC_REMOTE_ENDPOINT for an
# S3-compatible store, and the store's keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), which DVC
# reads from the environment: they are never written to a file. The remote is added to
# .dvc/config.local as the default remote 'ci', so .dvc/config stays as committed. Without a
# remote (or, on an s3:// remote, without keys, as in a pull request from a fork), `pr` runs the
# full pipeline and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

REMOTE=ci   # the name under which DVC_REMOTE_URL is added
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

die() {
    echo "review.sh: $*" >&2
    exit 1
}

# Why the remote cannot be used (empty when it can), from the environment alone.
no_remote_reason() {
    if [[ -z "${DVC_REMOTE_URL:-}" ]]; then
        echo "no DVC remote is configured (set DVC_REMOTE_URL)"
    elif [[ "$DVC_REMOTE_URL" == s3://* &&
            ( -z "${AWS_ACCESS_KEY_ID:-}" || -z "${AWS_SECRET_ACCESS_KEY:-}" ) ]]; then
        echo "DVC_REMOTE_URL is set but AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not" \
             "(pull requests from forks get no secrets)"
    fi
}

# Adds the remote (to .dvc/config.local), restores what it holds and reproduces: a stage whose
# results were restored is unchanged; a changed stage is restored from the run-cache when its
# params ran before (`repro --pull` fetches the run-cache); a stage whose results the remote
# lacks runs. (`repro --pull --allow-missing` downloads less, but fails a changed stage whose
# inputs the remote lacks; `repro --pull` alone pulls stage by stage, 5x slower here.)
reproduce_with_remote() {
    USE_REMOTE=1
    dvc remote add --local --default --force "$REMOTE" "$DVC_REMOTE_URL" >/dev/null
    if [[ -n "${DVC_REMOTE_ENDPOINT:-}" ]]; then
        dvc remote modify --local "$REMOTE" endpointurl "$DVC_REMOTE_ENDPOINT"
    fi
    dvc_step pull --allow-missing
    dvc_step repro --pull
}

# `dvc ARGS...` with its output shown and kept in $LOG. A failure ends the script with one line:
# the command, the remote, and DVC's own cause (its last ERROR line), not a wall of output.
dvc_step() {
    if dvc "$@" 2>&1 | tee "$LOG"; then
        return
    fi
    local cause where=""
    cause=$(grep '^ERROR' "$LOG" | tail -n 1 | sed 's/^ERROR: *//') || true
    [[ -n "$cause" ]] || cause="see the output above"
    [[ -z "$USE_REMOTE" ]] || where=" (remote '$REMOTE': $DVC_REMOTE_URL)"
    die "dvc $* failed$where: $cause"
}

# "N ran, M restored or unchanged", from the `dvc repro` output in $LOG: every stage it names
# ("Stage 'x' didn't change", "Pulling data for stage: 'x'", ...) that it did not run.
stage_counts() {
    local ran named
    ran=$(grep -o "^Running stage '[^']*'" "$LOG" | sort -u | grep -c .) || true
    named=$(grep -oE "[Ss]tage:? '[^']*'" "$LOG" | sed "s/.* '//" | sort -u | grep -c .) || true
    echo "$ran ran, $((named - ran)) restored or unchanged"
}

# The run names (`q2/ffn_lr1`) whose headline metrics differ from BASE: metrics/summary.json
# keys are `<run with / as _>.<metric>`.
changed_runs() {
    dvc metrics diff "$1" --json | python -c '
import json, re, sys
diff = json.load(sys.stdin).get("metrics/summary.json", {})
print("\n".join(sorted({re.sub(r"^(q\d)_", r"\1/", key.split(".")[0]) for key in diff})))'
}

# The rows of reports/tables.md naming one of the runs given (one per line), under their
# table's title and header.
table_rows() {
    awk -v runs="$1" -F ' [|] ' '
        BEGIN { n = split(runs, list, "\n"); for (i = 1; i <= n; i++) want["`" list[i] "`"] = 1 }
        /^## / { title = $0; header = ""; sep = ""; shown = 0; next }
        /^\|/ && header == "" { header = $0; next }
        /^\|/ && sep == "" { sep = $0; next }
        /^\|/ && ($2 in want) {
            if (!shown) { print "##" title "\n\n" header "\n" sep; shown = 1 }
            print
        }
        /^$/ && shown == 1 { print ""; shown = 2 }
    ' reports/tables.md
}

# The ids of the overlays (top-level `plots:` entries of dvc.yaml whose `y` maps files to
# columns) that draw one of the files given.
overlays_of() {
    python - "$@" <<'EOF'
import sys
import yaml

changed = set(sys.argv[1:])
for entry in yaml.safe_load(open("dvc.yaml")).get("plots", []):
    if isinstance(entry, dict):
        (plot_id, spec), = entry.items()
        y = (spec or {}).get("y")
        if isinstance(y, dict) and changed & set(y):
            print(plot_id)
EOF
}

# Prints its input, a Markdown table from `dvc ... diff --md`, or "No change." when the table
# has no rows (DVC prints the header alone).
or_no_change() {
    local text
    text=$(cat)
    if [[ $(grep -c '^|' <<<"$text") -gt 2 ]]; then
        echo "$text"
    else
        echo "No change."
    fi
}

write_review() {
    local base=$1 how=$2 runs plot_files plot_ids id
    runs=$(changed_runs "$base")
    plot_files=$( { git diff --name-only "$base" -- plots/
                    git ls-files --others --exclude-standard -- plots/; } | sort -u)
    # shellcheck disable=SC2086  # one file name per word
    plot_ids=$(overlays_of $plot_files)
    dvc plots diff "$base" --out dvc_plots >/dev/null
    mkdir -p dvc_plots/overlays
    {
        echo "## Pipeline review: \`$(git rev-parse --short HEAD)\` against \`$base\`"
        echo
        echo "$how"
        echo
        echo "### Params"
        echo
        dvc params diff "$base" --md | or_no_change
        echo
        echo "### Metrics"
        echo
        dvc metrics diff "$base" --md | or_no_change
        echo
        echo "### Sweep overlays"
        echo
        if [[ -z "$plot_ids" ]]; then
            echo "No change."
        elif command -v vl2svg >/dev/null; then
            for id in $plot_ids; do
                dvc plots diff "$base" --show-vega --targets "$id" > "dvc_plots/overlays/$id.json"
                vl2svg "dvc_plots/overlays/$id.json" "dvc_plots/overlays/$id.svg"
                echo "![$id](./dvc_plots/overlays/$id.svg)"
            done
        else
            echo "Changed (vl2svg is not installed, so not drawn here):" \
                 "$(sed 's/.*/`&`/' <<<"$plot_ids" | paste -sd, | sed 's/,/, /g')."
            echo "See them with \`dvc plots diff $base --targets <id>\`."
        fi
        echo
        echo "Every plot, $base beside this change: \`dvc plots diff $base\` (the \`dvc-plots\`" \
             "artifact in CI)."
        echo
        echo "### Changed table rows"
        echo
        if [[ -z "$runs" ]]; then
            echo "No change."
        else
            table_rows "$runs"
        fi
    } > review.md.tmp
    mv review.md.tmp review.md
    echo "Wrote review.md"
}

mode=${1:-}
USE_REMOTE=""
reason=$(no_remote_reason)
case "$mode" in
    pr)
        base=${2:-main}
        git rev-parse --verify --quiet "$base^{commit}" >/dev/null ||
            die "base revision '$base' not found: fetch it (git fetch origin $base:$base)" \
                "or name another as the second argument"
        if [[ -n "$reason" ]]; then
            dvc_step repro
            how="**Full run:** $reason, so the pipeline ran without it ($(stage_counts))."
        else
            reproduce_with_remote
            how="**Stages:** $(stage_counts) (main's results come from the DVC remote)."
        fi
        write_review "$base" "$how"
        ;;
    main)
        [[ -z "$reason" ]] || die "cannot push the baseline: $reason"
        reproduce_with_remote
        echo "Stages: $(stage_counts)"
        # DVC pushes what its cache holds without re-hashing it: a corrupt object is never sent
        python -m scripts.verify ||
            die "not pushing: the cache holds corrupt objects (above); run" \
                "python -m scripts.verify --remove-corrupt, then this again"
        dvc_step push --run-cache
        ;;
    *)
        die "usage: scripts/review.sh pr [BASE] | scripts/review.sh main"
        ;;
esac
