#!/usr/bin/env bash
# Publish every released bundle (bundles/*.dvc) where the serving machines read them: the remote
# named in $1 (e.g. serving), or the default remote when $1 is empty. Every released bundle,
# not only what this runner has cached: the bundles are pulled from the default remote first,
# and a bundle missing there (or from the cache) fails the step, named, instead of DVC's
# warning and exit 0 (the rollback targets would be missing where `mlops sync` looks for them).
set -euo pipefail
to="${1:-}"
shopt -s nullglob
pointers=(bundles/*.dvc)
if [ "${#pointers[@]}" -eq 0 ]; then
  echo "no released bundles"
  exit 0
fi
log=$(mktemp)
if ! .venv/bin/dvc pull "${pointers[@]}" > "${log}" 2>&1; then
  cat "${log}"
  missing=$(grep -Eo "bundles/[0-9a-zA-Z_.-]+" "${log}" | sort -u | tr '\n' ' ' || true)
  echo "::error::cannot fetch every released bundle from the DVC remote: missing ${missing:-(see the log)}"
  exit 1
fi
if [ -n "${to}" ]; then
  .venv/bin/dvc push --remote "${to}" "${pointers[@]}" 2>&1 | tee "${log}"
else
  .venv/bin/dvc push "${pointers[@]}" 2>&1 | tee "${log}"
fi
if grep -qi "missing cache files\|failed to push\|some files are missing" "${log}"; then
  echo "::error::some released bundles were not published (see above): the serving remote lacks them"
  exit 1
fi
missing=$(.venv/bin/dvc status --cloud ${to:+--remote "${to}"} "${pointers[@]}" 2>&1 | grep -E "^\s+(new|missing|deleted):" || true)
if [ -n "${missing}" ]; then
  echo "::error::after publishing, the remote still lacks: ${missing}"
  exit 1
fi
echo "published ${#pointers[@]} released bundle(s)${to:+ to the '${to}' remote}"
