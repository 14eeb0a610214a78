#!/usr/bin/env bash
# Install what the benchmark drives (nginx as upstream and reference proxy, wrk as load generator, valgrind
# for `make bench-instructions`) from Debian's packages when they are missing; LiteLLM is optional:
# `python -m bench.run --install-litellm`.
set -euo pipefail
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "bench: installing ${missing[*]} (Debian packages)"
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
