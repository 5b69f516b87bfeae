#!/usr/bin/env bash
# Configure a DVC remote from repository secrets, for any remote type DVC supports.
#   DVC_REMOTE_URL     e.g. s3://bucket/path, gs://..., azure://..., ssh://host/path
#   DVC_REMOTE_CONFIG  optional lines for .dvc/config.local (credentials), e.g.
#       [remote "storage"]
#           access_key_id = ...
#   DVC_REMOTE_NAME    the remote's name (default: storage)
#   DVC_REMOTE_DEFAULT "yes" (default) makes it the default remote; "no" adds it by name only
#                      (deploy.yml adds the serving remote next to the default one)
# Prints "remote=yes" or "remote=no" to $GITHUB_OUTPUT; never prints the secret. The remote goes
# to .dvc/config.local (git-ignored), so nothing here can be committed by a later step.
set -euo pipefail
name="${DVC_REMOTE_NAME:-storage}"
if [ -z "${DVC_REMOTE_URL:-}" ]; then
  echo "no DVC remote '${name}' configured (its URL secret is not set)"
  echo "remote=no" >> "${GITHUB_OUTPUT:-/dev/null}"
  exit 0
fi
default=(--default)
if [ "${DVC_REMOTE_DEFAULT:-yes}" = "no" ]; then
  default=()
fi
.venv/bin/dvc remote add --local --force "${default[@]}" "${name}" "${DVC_REMOTE_URL}"
if [ -n "${DVC_REMOTE_CONFIG:-}" ]; then
  umask 077
  printf '%s\n' "${DVC_REMOTE_CONFIG}" >> .dvc/config.local
fi
echo "configured DVC remote '${name}'"
echo "remote=yes" >> "${GITHUB_OUTPUT:-/dev/null}"
