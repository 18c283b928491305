#!/bin/sh
# Verify that every JSON file under this manifest tree parses.
# Usage: scripts/verify-manifests.sh [ROOT]
set -eu
root=${1:-"$(dirname "$0")/.."}
bad=$(find "$root" -type f -name '*.json' -exec sh -c '
    for f do
        python3 -m json.tool "$f" >/dev/null 2>&1 || printf "invalid JSON: %s\n" "$f"
    done' sh {} +)
echo "checked $(find "$root" -type f -name '*.json' | wc -l) JSON files"
if [ -n "$bad" ]; then
    echo "$bad" >&2
    exit 1
fi
