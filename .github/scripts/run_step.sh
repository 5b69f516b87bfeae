#!/usr/bin/env bash
# Run one workflow step's command and, when it fails, say so where people look: an `::error::`
# annotation and a line in the job summary, each with the command's own last error line (a
# scheduled run nobody watches must name its cause on the run's page, not only in its log).
# Usage: run_step.sh "what this step does" COMMAND [ARGS...]   (exits with the command's status)
set -euo pipefail
what="$1"
shift
log=$(mktemp)
status=0
"$@" 2>&1 | tee "${log}" || status=$?  # pipefail: the command's status (tee succeeds)
if [ "${status}" -ne 0 ]; then
  cause=$(grep -E "^(ERROR|error|Error)\b" "${log}" | tail -n 1 || true)
  if [ -z "${cause}" ]; then
    cause=$(grep -Ev "^[[:space:]]*$" "${log}" | tail -n 1 || true)
  fi
  cause="${cause//'%'/'%25'}"
  echo "::error::${what} failed (exit ${status}): ${cause}"
  printf '**%s failed** (exit %s): `%s`\n' "${what}" "${status}" "${cause}" \
    >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
fi
rm -f "${log}"
exit "${status}"
