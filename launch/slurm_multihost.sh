#!/usr/bin/env bash
#SBATCH --job-name=dmr-multihost
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --gres=gpu:4
#SBATCH --time=24:00:00
#
# One data-parallel dmr run across the nodes of a Slurm allocation: srun starts one process per
# node, each drives the GPUs of its node, and jax.distributed.initialize() finds the others
# through Slurm's environment (--config.parallel.distributed=True is added for you).
#
# Usage (from the repository root, on a login node):
#   launch/slurm_multihost.sh [--dry-run] [SBATCH_OPTIONS...] -- MAIN_ARGS...
# e.g.
#   PYTHON=.venv/bin/python launch/slurm_multihost.sh --nodes=4 --gres=gpu:8 -- \
#       --config=configs/fashion.py --workdir=/shared/runs/fashion
#
#   --dry-run        print the sbatch command and the command each node runs, submit nothing
#   SBATCH_OPTIONS   passed to sbatch; they override the #SBATCH defaults above (2 nodes, one
#                    task per node, 4 GPUs per node)
#   MAIN_ARGS        the arguments of `python -m dmr.main` (--config, --workdir, --config.x=y);
#                    the workdir must be on a filesystem every node sees; relative paths are
#                    relative to the directory you submit from
#   PYTHON           environment variable: the Python with dmr installed (default: python3)
#
# The job's log: slurm-dmr-multihost-<job id>.log in the directory you submit from.
set -euo pipefail

# --- inside the Slurm job: launch/slurm_multihost.sh --in-job MAIN_ARGS... ----------------------
if [[ "${1:-}" == --in-job ]]; then
  shift
  exec srun --ntasks-per-node=1 "$DMR_PYTHON" -m dmr.main "$@"
fi

# --- on the login node: submit -----------------------------------------------------------------
script=$(realpath "$0")
source "$(dirname "$script")/common.sh"
dry_run=0
sbatch_options=()
while (($#)); do
  case "$1" in
    -h|--help) print_usage "$script"; exit 0 ;;
    --dry-run) dry_run=1 ;;
    --) shift; break ;;
    *) sbatch_options+=("$1") ;;
  esac
  shift
done
(($#)) || { print_usage "$script" >&2; echo "error: no MAIN_ARGS after --" >&2; exit 2; }

python=${PYTHON:-python3}
main_args=("$@" --config.parallel.distributed=True)
submit=(sbatch --export="ALL,DMR_PYTHON=$python" --output=slurm-dmr-multihost-%j.log
        "${sbatch_options[@]}" "$script" --in-job "${main_args[@]}")
if ((dry_run)); then
  print_command "${submit[@]}"
  echo "# the job runs:"
  print_command srun --ntasks-per-node=1 "$python" -m dmr.main "${main_args[@]}"
else
  "${submit[@]}"
fi
