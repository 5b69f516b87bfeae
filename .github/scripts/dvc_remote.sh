#!/usr/bin/env bash
# Configure a DVC remote from repository secrets, for any remote type DVC supports, and check
# that DVC can read the result.
#   DVC_REMOTE_URL     e.g. s3://bucket/path, gs://..., azure://..., ssh://host/path, a path
#   DVC_REMOTE_CONFIG  optional: the remote's options (credentials), one `option = value` per
#                      line, the options of `dvc remote modify`, e.g.
#                          access_key_id = AKIA...
#                          secret_access_key = ...
#                      Blank lines and `#` comments are skipped; a `[remote "NAME"]` header
#                      naming this remote is accepted and ignored, any other header is refused.
#                      Each option is set with `dvc remote modify --local`, so DVC checks it
#                      against the remote's type; a refused line fails this step, named by its
#                      line number and option (never its value).
#   DVC_REMOTE_NAME    the remote's name (default: storage)
#   DVC_REMOTE_DEFAULT "yes" (default) makes it the default remote; "no" adds it by name only
#                      (deploy.yml adds the serving remote next to the default one)
# The remote type's DVC plugin is installed first (`make install-remote-<type>`: dvc-s3, dvc-gs,
# dvc-azure, dvc-ssh from requirements/remote-<type>.lock); local paths and http(s) need none.
# Prints "remote=yes" or "remote=no" to $GITHUB_OUTPUT; never prints the secret. The remote goes
# to .dvc/config.local (git-ignored, mode 600), so nothing here can be committed by a later step.
set -euo pipefail
name="${DVC_REMOTE_NAME:-storage}"
url="${DVC_REMOTE_URL:-}"
fail() {
  echo "::error::DVC remote '${name}': $*"
  exit 1
}
if [ -z "${url}" ]; then
  echo "no DVC remote '${name}' configured (its URL secret is not set)"
  echo "remote=no" >> "${GITHUB_OUTPUT:-/dev/null}"
  exit 0
fi
kind="${url%%://*}"
case "${url}" in
  s3://*) plugin=s3 ;;
  gs://* | gcs://*) plugin=gs ;;
  azure://* | az://*) plugin=azure ;;
  ssh://* | sftp://*) plugin=ssh ;;
  http://* | https://* | file://*) plugin="" kind="${url%%://*}" ;;
  *://*)
    fail "the URL's type '${url%%://*}://' has no plugin here: s3://, gs://, azure://, ssh://, \
http(s):// and local paths are supported (add the plugin's extra to pyproject.toml and a \
requirements/remote-<type>.lock to support another)"
    ;;
  *) plugin="" kind="local path" ;;
esac
if [ -n "${plugin}" ]; then
  make --no-print-directory "install-remote-${plugin}" \
    || fail "installing the ${plugin} plugin (make install-remote-${plugin}) failed"
fi
default=(--default)
if [ "${DVC_REMOTE_DEFAULT:-yes}" = "no" ]; then
  default=()
fi
umask 077
.venv/bin/dvc remote add --local --force "${default[@]}" "${name}" "${url}" > /dev/null \
  || fail "DVC refuses the URL (check the URL secret)"
number=0
while IFS= read -r line || [ -n "${line}" ]; do
  number=$((number + 1))
  line="${line#"${line%%[![:space:]]*}"}"   # strip leading blanks
  line="${line%"${line##*[![:space:]]}"}"   # and trailing ones
  if [ -z "${line}" ] || [ "${line:0:1}" = "#" ]; then
    continue
  fi
  if [[ "${line}" =~ ^\[[\'\"]?remote[[:space:]]+\"([^\"]*)\"[\'\"]?\]$ ]]; then
    if [ "${BASH_REMATCH[1]}" = "${name}" ]; then
      continue
    fi
    fail "DVC_REMOTE_CONFIG line ${number}: the section [remote \"${BASH_REMATCH[1]}\"] is \
not this remote's: give the options of '${name}' only, one 'option = value' per line"
  fi
  if [[ "${line}" =~ ^\[ ]]; then
    fail "DVC_REMOTE_CONFIG line ${number}: a section header other than [remote \"${name}\"]: \
give the options of '${name}' only, one 'option = value' per line"
  fi
  if ! [[ "${line}" =~ ^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
    fail "DVC_REMOTE_CONFIG line ${number} is not 'option = value'"
  fi
  option="${BASH_REMATCH[1]}"
  if ! .venv/bin/dvc remote modify --local "${name}" "${option}" "${BASH_REMATCH[2]}" \
    > /dev/null 2>&1; then
    fail "DVC_REMOTE_CONFIG line ${number}: DVC refuses the option '${option}' for a \
${kind} remote (see \`dvc remote modify --help\` and DVC's remote documentation)"
  fi
done <<< "${DVC_REMOTE_CONFIG:-}"
# DVC must read what was written: the whole configuration parses, and names this URL
if ! .venv/bin/dvc remote list > /dev/null 2>&1; then
  fail "DVC cannot read .dvc/config.local after configuring it"
fi
if [ "$(.venv/bin/dvc config "remote.${name}.url" 2> /dev/null)" != "${url}" ]; then
  fail "DVC does not read the remote's URL back after configuring it"
fi
echo "configured DVC remote '${name}' (${kind})"
echo "remote=yes" >> "${GITHUB_OUTPUT:-/dev/null}"
