#!/usr/bin/env bash
# Create or update (in place) the one impact comment on a pull request.
# Usage: upsert_pr_comment.sh PR_NUMBER BODY_FILE   (needs GH_TOKEN and GH_REPO in the environment)
# The comment is found by the marker line that `mlops report --pr` writes first, and only among
# the comments the bot itself wrote (PR_COMMENT_LOGIN, default github-actions[bot], the login of
# the workflow's GITHUB_TOKEN): anyone can paste the marker into a comment of their own, and
# the bot must never overwrite (or be steered by) another user's comment.
set -euo pipefail
pr="$1"
body="$2"
marker='<!-- gitops-mlops:pr-report -->'
login="${PR_COMMENT_LOGIN:-github-actions[bot]}"
case "${login}" in
  *'"'* | *'\'* | '') echo "upsert_pr_comment.sh: PR_COMMENT_LOGIN ${login@Q} is not a login" >&2; exit 2 ;;
esac
existing=$(gh api --paginate "repos/${GH_REPO}/issues/${pr}/comments" \
  --jq ".[] | select(.user.login == \"${login}\" and (.body | startswith(\"${marker}\"))) | .id" \
  | head -n 1)
if [ -n "${existing}" ]; then
  gh api --method PATCH "repos/${GH_REPO}/issues/comments/${existing}" -F "body=@${body}" >/dev/null
  echo "updated comment ${existing}"
else
  gh api --method POST "repos/${GH_REPO}/issues/${pr}/comments" -F "body=@${body}" >/dev/null
  echo "created a comment"
fi
