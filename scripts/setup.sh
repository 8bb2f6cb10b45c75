#!/usr/bin/env bash
# Installs what Morgana's tests need on Debian 12. Run as root (CI is root).
#
# Packages:
#   curl   the HTTP client the end-to-end tests drive appliances with
#   gcc    the linker driver rustc calls (cc)
set -euo pipefail

packages=(curl gcc)

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh installs Debian packages: run it as root (or with sudo)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "setup: installed ${packages[*]}"
