#!/usr/bin/env bash
# Commit whatever the pipeline changed to a new branch and open a pull request for it.
# Usage: open_pr.sh BRANCH TITLE BODY   (needs GH_TOKEN and GH_REPO; no-op when nothing changed)
# Only the paths the pipeline writes are committed: config, lock, reports, releases, the DVC
# pointers under data/ (feedback, production windows) and the maintenance ledger (maintain/).
# A path missing from this checkout is skipped: one missing pathspec makes `git add` add nothing.
set -euo pipefail
branch="$1"; title="$2"; body="$3"
paths=()
for path in conf params.yaml dvc.lock reports deploy bundles data models maintain; do
  if [ -e "${path}" ]; then
    paths+=("${path}")
  fi
done
if [ -z "$(git status --porcelain -- "${paths[@]}")" ]; then
  echo "nothing changed: no pull request"
  exit 0
fi
git config user.name "gitops-mlops[bot]"
git config user.email "gitops-mlops-bot@users.noreply.github.com"
git switch -c "${branch}"
git add -A -- "${paths[@]}"
git commit -m "${title}"
git push "https://x-access-token:${GH_TOKEN}@github.com/${GH_REPO}.git" "HEAD:${branch}"
gh pr create --head "${branch}" --title "${title}" --body "${body}"
