#!/usr/bin/env bash
# Commit whatever the pipeline changed to the bot's branch for this kind of change and open, or
# update, its one pull request.
# Usage: open_pr.sh BRANCH TITLE BODY_FILE   (needs GH_TOKEN and GH_REPO; no-op when nothing changed)
#        open_pr.sh --commit-to BRANCH TITLE  commit the same paths and push them straight onto
#                   BRANCH (the default branch), no pull request: for a change the project
#                   declared needs no review (a rollout's `propose: commit`); never forced, so a
#                   branch that moved meanwhile fails the push and the next run tries again
# One branch per kind of change (bot/retrain, bot/monitor): each run re-creates it from this
# checkout and force-pushes it, so a re-run (even of the same run id) never fails at `git push`,
# and an open pull request from the branch is edited (title, body), never duplicated: it always
# shows the newest run's result on the newest main. The branch belongs to the bot; do not push
# to it by hand.
# Only the paths the pipeline writes are committed: config, lock, reports, releases, the DVC
# pointers under data/ (feedback, production windows) and the maintenance ledger (maintain/).
# models/ is not among them: everything in it is a DVC-cached output, git-ignored as a whole, and
# `git add` refuses an ignored pathspec outright (tests/test_gitignore.py keeps the two in step).
# A path missing from this checkout is skipped: one missing pathspec makes `git add` add nothing.
set -euo pipefail
direct=no
if [ "${1:-}" = "--commit-to" ]; then
  direct=yes
  shift
  branch="$1"; title="$2"; body=""
else
  branch="$1"; title="$2"; body="$3"
fi
paths=()
for path in conf params.yaml dvc.lock reports deploy bundles data maintain; do
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
if [ "${direct}" = yes ]; then
  git add -A -- "${paths[@]}"
  git commit --quiet -m "${title}"
  git push --quiet "https://x-access-token:${GH_TOKEN}@github.com/${GH_REPO}.git" \
    "HEAD:refs/heads/${branch}"
  echo "committed to ${branch}: ${title}"
  exit 0
fi
git switch --quiet -C "${branch}"
git add -A -- "${paths[@]}"
git commit --quiet -m "${title}"
git push --quiet --force "https://x-access-token:${GH_TOKEN}@github.com/${GH_REPO}.git" \
  "HEAD:refs/heads/${branch}"
existing=$(gh pr list --head "${branch}" --state open --json number --jq '.[0].number // empty')
if [ -n "${existing}" ]; then
  gh pr edit "${existing}" --title "${title}" --body-file "${body}" > /dev/null
  echo "updated pull request #${existing} (${branch})"
else
  gh pr create --head "${branch}" --title "${title}" --body-file "${body}"
fi
