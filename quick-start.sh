#!/usr/bin/env bash
# Installs dependencies if missing, then runs one request in local mode:
#   ./quick-start.sh "Write a haiku about queues"
# Run from inside another git repository (e.g. `cd ~/src/app && ~/claude-fleet/quick-start.sh "…"`),
# the workers work on that repository and its result comes back as the branch fleet/<job_id>;
# from anywhere else (this clone included) they start in empty directories.
# Extra flags go to `orchestrator run` (e.g. --workers 3 --claude-command ./my-claude).
set -euo pipefail
caller_dir="$PWD"
cd "$(dirname "$0")"
if [ "$#" -lt 1 ]; then
  echo "usage: ./quick-start.sh \"<request>\" [orchestrator run flags]" >&2
  exit 64
fi
node -e 'const [maj] = process.versions.node.split("."); if (+maj < 20) { console.error("Node.js 20 or newer is required, found " + process.version); process.exit(1); }'
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
repo_flag=(--no-repo)
caller_top=$(git -C "$caller_dir" rev-parse --show-toplevel 2>/dev/null || true)
here_top=$(git rev-parse --show-toplevel 2>/dev/null || true)
if [ -n "$caller_top" ] && [ "$caller_top" != "$here_top" ]; then
  repo_flag=(--repo "$caller_dir")
fi
for arg in "$@"; do
  if [ "$arg" = "--repo" ] || [ "$arg" = "--no-repo" ]; then repo_flag=(); fi
done
exec npm start --silent -- "$@" "${repo_flag[@]}"
