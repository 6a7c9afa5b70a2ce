#!/usr/bin/env bash
# Installs the given Debian packages when some are missing and apt-get is usable (as root or
# through passwordless sudo); otherwise prints the command to run and carries on.
set -u
missing=()
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else
  echo "dmr: missing Debian packages: ${missing[*]}. Install them with:"
  echo "  sudo apt-get install -y ${missing[*]}"
  exit 0
fi
echo "dmr: installing Debian packages: ${missing[*]}"
$sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
  || { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
  || echo "dmr: apt-get could not install ${missing[*]}; install them by hand."
