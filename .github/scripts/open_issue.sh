#!/usr/bin/env bash
# Open a GitHub issue unless one, open or closed, already has this exact title: the monitor
# workflow runs on a schedule, and an alert's title carries its decision id, so one alert opens
# one issue, and a person who closed it is not asked again (a new alert has a new id).
# Usage: open_issue.sh TITLE BODY_FILE   (needs GH_TOKEN and GH_REPO)
set -euo pipefail
title="$1"; body="$2"
if gh issue list --state all --limit 1000 --json title --jq '.[].title' | grep -Fxq -- "${title}"; then
  echo "an issue already reports this (open or closed): ${title}"
  exit 0
fi
gh issue create --title "${title}" --body-file "${body}"
