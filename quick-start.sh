#!/usr/bin/env bash
# Installs dependencies if missing, then runs one request in local mode:
#   ./quick-start.sh "Write a haiku about queues"
# Extra flags go to `orchestrator run` (e.g. --workers 3 --claude-command ./my-claude).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$#" -lt 1 ]; then
  echo "usage: ./quick-start.sh \"<request>\" [orchestrator run flags]" >&2
  exit 64
fi
node -e 'const [maj] = process.versions.node.split("."); if (+maj < 20) { console.error("Node.js 20 or newer is required, found " + process.version); process.exit(1); }'
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
exec npm start --silent -- "$@"
