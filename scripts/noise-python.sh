#!/usr/bin/env bash
# Prints the absolute path of a Python that has noiseprotocol 0.3.1, the independent Noise
# implementation Tests/RelayClientTests/NoiseInteropTests.swift checks ours against
# (RELAY_TEST_NOISE_PYTHON; scripts/with-test-services.sh exports it from here).
#
# The venv is ${RELAY_NOISE_VENV:-.build/noise-venv}, relative to the repository root. It is made
# on first use and noiseprotocol is installed only when the venv cannot import it, so later runs
# touch nothing. Only the path goes to stdout; everything else goes to stderr. Fails (non-zero)
# when there is no working python3 -m venv (Debian: apt-get install python3 python3-venv) or pip
# cannot install the package.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "noise-python: $*" >&2; exit 1; }

venv=${RELAY_NOISE_VENV:-.build/noise-venv}
mkdir -p "$(dirname "$venv")" || fail "cannot create the directory of $venv"
venv="$(cd "$(dirname "$venv")" && pwd)/$(basename "$venv")"
python="$venv/bin/python3"
has_noise() { "$python" -c 'import importlib.metadata as m, noise; assert m.version("noiseprotocol") == "0.3.1"' >/dev/null 2>&1; }

if [ -x "$python" ] && has_noise; then
  echo "$python"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 is not installed (Debian: apt-get install python3 python3-venv)"
# A venv without pip (made while python3-venv was missing, so ensurepip failed) is made again.
if [ ! -x "$python" ] || ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "noise-python: creating the venv $venv" >&2
  python3 -m venv --clear "$venv" >&2 || fail "python3 -m venv $venv failed (Debian: apt-get install python3-venv)"
fi
echo "noise-python: installing noiseprotocol==0.3.1 into $venv" >&2
"$python" -m pip install --quiet --disable-pip-version-check 'noiseprotocol==0.3.1' >&2 \
  || fail "pip could not install noiseprotocol==0.3.1 into $venv"
has_noise || fail "$python still cannot import noiseprotocol 0.3.1"
echo "$python"
