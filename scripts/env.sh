# Sourced by the scripts: a persistent Dagster home inside the repository
# (unless the user set DAGSTER_HOME), quiet TensorFlow start-up.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DAGSTER_HOME="${DAGSTER_HOME:-$repo/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
if [ ! -f "$DAGSTER_HOME/dagster.yaml" ]; then
  cp "$repo/scripts/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
else
  # An existing home keeps its settings as they are; each top-level setting of scripts/dagster.yaml
  # it does not have (a newer one, such as run_monitoring) is appended, with its comment.
  missing="$(awk '
    NR == FNR { if (match($0, /^[A-Za-z_][A-Za-z0-9_]*:/)) have[substr($0, 1, RLENGTH - 1)] = 1; next }
    function flush() { if (key != "" && !(key in have)) printf "\n%s", block; key = ""; block = "" }
    /^#/ { comments = comments $0 "\n"; next }
    /^[ \t]*$/ { flush(); comments = ""; next }
    /^[A-Za-z_]/ { flush(); match($0, /^[A-Za-z_][A-Za-z0-9_]*:/); key = substr($0, 1, RLENGTH - 1); block = comments $0 "\n"; comments = ""; next }
    { block = block $0 "\n" }
    END { flush() }
  ' "$DAGSTER_HOME/dagster.yaml" "$repo/scripts/dagster.yaml")"
  if [ -n "$missing" ]; then
    printf '\n# Added from %s (settings this file did not have):%s\n' "$repo/scripts/dagster.yaml" "$missing" >> "$DAGSTER_HOME/dagster.yaml"
  fi
  # The one setting an earlier scripts/dagster.yaml wrote that no longer works: a limit on runs tagged
  # mnist_pipeline/training, a tag no run carries any more. Exactly that block (never one a user edited)
  # becomes the concurrency pool limit that replaced it.
  if grep -qx '      - key: mnist_pipeline/training' "$DAGSTER_HOME/dagster.yaml"; then
    perl -0pi -e 's/^concurrency:\n  runs:\n    tag_concurrency_limits:\n      - key: mnist_pipeline\/training\n        value: "true"\n        limit: 1\n/# One run that trains at a time: the concurrency pool `training` (replaced a limit on a run tag).\nconcurrency:\n  pools:\n    granularity: run\n    default_limit: 1\n/m' "$DAGSTER_HOME/dagster.yaml"
  fi
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# The scripts run the repository's .venv, as if it were activated: dg (which always loads the code
# location in the project's .venv) warns on every command when the active environment is another one.
export VIRTUAL_ENV="$repo/.venv"
