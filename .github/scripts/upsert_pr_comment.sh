#!/usr/bin/env bash
# Create or update (in place) the one impact comment on a pull request.
# Usage: upsert_pr_comment.sh PR_NUMBER BODY_FILE   (needs GH_TOKEN and GH_REPO in the environment)
# The comment is found by the marker line that `mlops report --pr` writes first.
set -euo pipefail
pr="$1"
body="$2"
marker='<!-- gitops-mlops:pr-report -->'
existing=$(gh api --paginate "repos/${GH_REPO}/issues/${pr}/comments" \
  --jq ".[] | select(.body | startswith(\"${marker}\")) | .id" | head -n 1)
if [ -n "${existing}" ]; then
  gh api --method PATCH "repos/${GH_REPO}/issues/comments/${existing}" -F "body=@${body}" >/dev/null
  echo "updated comment ${existing}"
else
  gh api --method POST "repos/${GH_REPO}/issues/${pr}/comments" -F "body=@${body}" >/dev/null
  echo "created a comment"
fi
