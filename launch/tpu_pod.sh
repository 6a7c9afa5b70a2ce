#!/usr/bin/env bash
#
# dmr on a Cloud TPU pod slice: installs dmr on every worker of a TPU VM, then starts
# `python3 -m dmr.main` on all workers at once with --config.parallel.distributed=True (added for
# you): jax.distributed.initialize() finds the other workers, and training is data parallel over
# every chip of the slice.
#
# Usage (on your machine, with gcloud logged in and the TPU VM created):
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE [--project=ID] [--repo=URL] [--ref=REF] [--copy]
#                     [--no-install] [--background] [--dry-run] -- MAIN_ARGS...
# e.g.
#   launch/tpu_pod.sh --tpu=dmr-v4-32 --zone=us-central2-b --background -- \
#       --config=configs/fashion.py --workdir=/mnt/shared/runs/fashion
#
#   --tpu=NAME, --zone=ZONE, --project=ID   the TPU VM (gcloud's default project if no --project)
#   --repo=URL      git repository to install from, cloned to ~/dmr on every worker or fetched
#                   there again (default: the origin remote of this checkout)
#   --ref=REF       what to check out (default: origin/HEAD; e.g. origin/dev, a tag, a commit)
#   --copy          install this checkout instead of --repo: its git-tracked files, uncommitted
#                   changes included, copied into ~/dmr on every worker
#   --no-install    skip installing (done before)
#   --background    run detached (nohup); each worker logs to ~/dmr.log; the ssh returns at once
#   --dry-run       print the commands, run nothing
#   MAIN_ARGS       the arguments of `python -m dmr.main`, run in ~/dmr on every worker. The
#                   workdir must be one directory all workers share (a Filestore/NFS mount or a
#                   gcsfuse-mounted bucket): the workers write checkpoints into it together.
#
# Installing runs `pip install -e './dmr[tpu]'` on every worker (jax[tpu] brings libtpu).
set -euo pipefail

script=$(realpath "$0")
repo=$(dirname "$(dirname "$script")")
source "$repo/launch/common.sh"

tpu="" zone="" project="" url="" ref="origin/HEAD" copy=0 install=1 background=0 dry_run=0
while (($#)); do
  case "$1" in
    -h|--help) print_usage "$script"; exit 0 ;;
    --tpu=*) tpu=${1#--tpu=} ;;
    --zone=*) zone=${1#--zone=} ;;
    --project=*) project=${1#--project=} ;;
    --repo=*) url=${1#--repo=} ;;
    --ref=*) ref=${1#--ref=} ;;
    --copy) copy=1 ;;
    --no-install) install=0 ;;
    --background) background=1 ;;
    --dry-run) dry_run=1 ;;
    --) shift; break ;;
    *) echo "error: unknown option $1 (MAIN_ARGS go after --)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$tpu" || -z "$zone" || $# -eq 0 ]]; then
  print_usage "$script" >&2
  echo "error: --tpu, --zone and MAIN_ARGS (after --) are required" >&2
  exit 2
fi
if ((install && !copy)) && [[ -z "$url" ]]; then
  url=$(git -C "$repo" remote get-url origin 2>/dev/null) || {
    echo "error: this checkout has no origin remote: pass --repo=URL or --copy" >&2; exit 2; }
fi

gcloud_args=(--zone="$zone" --worker=all)
[[ -n "$project" ]] && gcloud_args+=(--project="$project")

run() {  # Runs (or prints, with --dry-run) a command.
  if ((dry_run)); then print_command "$@"; else "$@"; fi
}

on_all_workers() {  # Runs the shell command $1 on every worker.
  run gcloud compute tpus tpu-vm ssh "$tpu" "${gcloud_args[@]}" --command="$1"
}

pip_install="python3 -m pip install -q -e './dmr[tpu]'"
if ((install && copy)); then
  archive=$(mktemp -u /tmp/dmr-XXXXXX).tar.gz
  if ((dry_run)); then
    echo "git -C $repo ls-files -z | tar -C $repo --null -T - -czf $archive"
  else
    git -C "$repo" ls-files -z | tar -C "$repo" --null -T - -czf "$archive"
  fi
  run gcloud compute tpus tpu-vm scp "$archive" "$tpu:dmr.tar.gz" "${gcloud_args[@]}"
  on_all_workers "cd ~ && mkdir -p dmr && tar -xzf dmr.tar.gz -C dmr && $pip_install"
  ((dry_run)) || rm -f "$archive"
elif ((install)); then
  fetch="if [ -d dmr/.git ]; then git -C dmr fetch -q origin;"
  fetch+=" else git clone -q $(print_command "$url") dmr; fi"
  checkout="git -C dmr checkout -q $(print_command "$ref")"
  on_all_workers "cd ~ && { $fetch; } && $checkout && $pip_install"
fi

main=$(print_command python3 -m dmr.main "$@" --config.parallel.distributed=True)
if ((background)); then
  on_all_workers "cd ~/dmr && nohup $main > ~/dmr.log 2>&1 < /dev/null &"
else
  on_all_workers "cd ~/dmr && $main"
fi
