#!/usr/bin/env bash
# Open a GitHub issue unless an open one already has this exact title (the monitor workflow
# runs on a schedule: the same alert must not open an issue per run).
# Usage: open_issue.sh TITLE BODY_FILE   (needs GH_TOKEN and GH_REPO)
set -euo pipefail
title="$1"; body="$2"
if gh issue list --state open --limit 200 --json title --jq '.[].title' | grep -Fxq -- "${title}"; then
  echo "an open issue already reports this: ${title}"
  exit 0
fi
gh issue create --title "${title}" --body-file "${body}"
