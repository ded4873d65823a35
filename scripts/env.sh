# Sourced by the scripts: a persistent Dagster home inside the repository
# (unless the user set DAGSTER_HOME), quiet TensorFlow start-up.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DAGSTER_HOME="${DAGSTER_HOME:-$repo/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp "$repo/scripts/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
