# Helpers shared by the launch/*.sh scripts (sourced, not run).

# Prints the header comment of script $1: its lines from the second to `set -euo pipefail`,
# without #SBATCH lines and leading blank lines.
print_usage() {
  sed -n '2,/^set -euo pipefail/p' "$1" | sed '/^#SBATCH/d; $d; s/^# \{0,1\}//' | sed '/./,$!d'
}

# Prints a command on one line, single-quoting the words that need it.
print_command() {
  local word words=() quote="'"
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_@%+=:,./\<\>~-]+$ ]]; then words+=("$word")
    else words+=("$quote${word//$quote/$quote\\$quote$quote}$quote"); fi
  done
  echo "${words[*]}"
}
