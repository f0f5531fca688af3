#!/usr/bin/env bash
# Debian packages advx's data, report tests and speech use. Installs only what is
# missing, and only when running as root (otherwise prints the command to run).
set -euo pipefail
pkgs=(dataset-fashion-mnist espeak-ng wordnet-base wordnet-sense-index chromium pocketsphinx-testdata)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "advx: missing Debian packages: ${missing[*]}" >&2
  echo "advx: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "advx: installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
