#!/usr/bin/env bash
# Installs dependencies if missing, then runs one request in local mode, in the folder you call it from:
#   cd ~/src/app && ~/claude-fleet/quick-start.sh "Write a haiku about queues"
# Relative flags (--config my.yaml, --workspace out) and the workspace are taken from that folder.
# Called from inside a git repository, the workers work on that repository and the result comes back
# as the branch fleet/<job_id>; from anywhere else, or from this clone itself, they start in empty
# directories. Extra flags go to `orchestrator run` (e.g. --workers 3 --claude-command ./my-claude).
set -euo pipefail
clone="$(cd "$(dirname "$0")" && pwd)"
if [ "$#" -lt 1 ]; then
  echo "usage: quick-start.sh \"<request>\" [orchestrator run flags]" >&2
  exit 64
fi
node -e 'const [maj] = process.versions.node.split("."); if (+maj < 20) { console.error("Node.js 20 or newer is required, found " + process.version); process.exit(1); }'
if [ ! -d "$clone/node_modules" ] || [ "$clone/package-lock.json" -nt "$clone/node_modules/.package-lock.json" ]; then
  (cd "$clone" && npm ci --no-audit --no-fund)
fi
# The orchestrator's own clone is never a job's source: from inside it, workers start empty.
repo_flag=()
caller_top=$(git rev-parse --show-toplevel 2>/dev/null || true)
clone_top=$(git -C "$clone" rev-parse --show-toplevel 2>/dev/null || true)
if [ -n "$caller_top" ] && [ "$caller_top" = "$clone_top" ]; then repo_flag=(--no-repo); fi
for arg in "$@"; do
  if [ "$arg" = "--repo" ] || [ "$arg" = "--no-repo" ]; then repo_flag=(); fi
done
exec node "$clone/bin/orchestrator.mjs" run "$@" "${repo_flag[@]}"
