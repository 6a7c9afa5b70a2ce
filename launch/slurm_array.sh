#!/usr/bin/env bash
#SBATCH --job-name=dmr-sweep
#SBATCH --time=24:00:00
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --gres=gpu:1
#
# A dmr sweep on Slurm: one array task per (variant, N, seed) model, all in one shared workdir.
#
# Usage (from the repository root, on a login node):
#   launch/slurm_array.sh [--dry-run] [--max-parallel=K] [SBATCH_OPTIONS...] -- SWEEP_ARGS...
# e.g.
#   PYTHON=.venv/bin/python launch/slurm_array.sh --partition=gpu -- \
#       --config=configs/fashion.py --workdir=/shared/runs/fashion --seeds=0,1,2
#
#   --dry-run          print the sbatch commands (and the sweep's commands), submit nothing
#   --max-parallel=K   run at most K array tasks at a time (default: no limit)
#   SBATCH_OPTIONS     passed to every sbatch call; they override the #SBATCH defaults above
#                      (CPU-only cluster: --gres=none)
#   SWEEP_ARGS         the arguments of launch/sweep.py (--config, --workdir, --variants,
#                      --sizes, --seeds, --stages, --no-final, --config.x=y); the workdir must
#                      be on a filesystem every node sees; relative paths are relative to the
#                      directory you submit from (where Slurm starts the jobs)
#   PYTHON             environment variable: the Python with dmr installed (default: python3)
#
# It submits up to three jobs, each after the previous one succeeded:
#   1. the manifolds stage, once, when the sweep needs it first (sweep.py --only=manifolds);
#   2. the array: task I runs job I of `launch/sweep.py --dry-run SWEEP_ARGS`
#      (sweep.py --job-index=I), its log in WORKDIR/logs/slurm-<array id>_<I>.log;
#   3. the final stages over all models (sweep.py --only=final), unless --no-final.
# Resubmitting the same command skips finished models and resumes unfinished ones.
set -euo pipefail

# --- inside a Slurm job: launch/slurm_array.sh --in-job=STEP SWEEP_ARGS... -------------------
run_step() {
  local step=$1; shift
  local sweep="$DMR_REPO/launch/sweep.py"
  case "$step" in
    manifolds) exec "$DMR_PYTHON" "$sweep" --only=manifolds "$@" ;;
    array) exec "$DMR_PYTHON" "$sweep" --job-index="$SLURM_ARRAY_TASK_ID" "$@" ;;
    final) exec "$DMR_PYTHON" "$sweep" --only=final "$@" ;;
  esac
}

if [[ "${1:-}" == --in-job=* ]]; then
  step=${1#--in-job=}; shift
  run_step "$step" "$@"
fi

# --- on the login node: submit -----------------------------------------------------------------
script=$(realpath "$0")
repo=$(dirname "$(dirname "$script")")
source "$repo/launch/common.sh"
dry_run=0
max_parallel=""
sbatch_options=()
while (($#)); do
  case "$1" in
    -h|--help) print_usage "$script"; exit 0 ;;
    --dry-run) dry_run=1 ;;
    --max-parallel=*) max_parallel="%${1#--max-parallel=}" ;;
    --) shift; break ;;
    *) sbatch_options+=("$1") ;;
  esac
  shift
done
(($#)) || { print_usage "$script" >&2; echo "error: no SWEEP_ARGS after --" >&2; exit 2; }

python=${PYTHON:-python3}
read -r jobs manifolds_first final workdir < <("$python" "$repo/launch/sweep.py" --plan "$@")
logs="$workdir/logs"
common=(--parsable --export="ALL,DMR_REPO=$repo,DMR_PYTHON=$python" "${sbatch_options[@]}")
last_id=""

# Submits (or prints, with --dry-run) `sbatch ARGS...`; sets last_id to the job id.
submit() {
  local placeholder=$1; shift
  if ((dry_run)); then
    print_command sbatch "$@"
    last_id="<${placeholder// /_}>"
  else
    last_id=$(sbatch "$@")
    last_id=${last_id%%;*}  # "id;cluster" on federated clusters
    echo "submitted $placeholder: $last_id"
  fi
}

((dry_run)) || mkdir -p "$logs"
dependency=()
if ((manifolds_first)); then
  submit "manifolds job id" "${common[@]}" --output="$logs/slurm-manifolds-%j.log" \
      "$script" --in-job=manifolds "$@"
  dependency=(--dependency="afterok:$last_id")
fi
submit "array job id" "${common[@]}" "${dependency[@]}" --array="0-$((jobs - 1))$max_parallel" \
    --output="$logs/slurm-%A_%a.log" "$script" --in-job=array "$@"
if ((final)); then
  submit "final job id" "${common[@]}" --dependency="afterok:$last_id" \
      --output="$logs/slurm-final-%j.log" "$script" --in-job=final "$@"
fi
if ((dry_run)); then
  echo "# the array's tasks 0..$((jobs - 1)) run these jobs (sweep.py --job-index=I):"
  "$python" "$repo/launch/sweep.py" --dry-run "$@"
fi
