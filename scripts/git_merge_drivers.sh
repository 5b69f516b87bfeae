#!/usr/bin/env bash
# Configure this clone's git for the merge drivers .gitattributes assigns (git keeps drivers in
# the clone's own config, never in the repository: the venv set-up that `make run`, `make test`
# and `make install` share runs this in every clone).
#
# dvc: data/production/<YYYY-MM>.dvc, one DVC output per month of production windows. Two
# branches adding windows to the same month both change its pointer; DVC's driver merges the
# two directory listings (it needs both listings in the local cache: `dvc fetch` the branch
# first) and `dvc checkout data/production` then brings the merged windows.
set -euo pipefail
dvc="${1:-$(pwd)/.venv/bin/dvc}"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "not a git repository: merge drivers not configured"
  exit 0
fi
git config merge.dvc.name "DVC's merge driver (directory outputs: windows added on two branches)"
git config merge.dvc.driver "${dvc} git-hook merge-driver --ancestor %O --our %A --their %B"
