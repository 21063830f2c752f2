#!/usr/bin/env bash
# Runs every Fuzz* target of every package for $FUZZTIME (default 10s),
# one after the other (go test -fuzz takes one target at a time).
# Arguments are package patterns (default ./...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZTIME=${FUZZTIME:-10s}
GO=${GO:-go}
count=0
pkgs=$($GO list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' "${@:-./...}")
for pkg in $pkgs; do
	if ! list=$($GO test -list '^Fuzz' "$pkg" 2>&1); then
		printf '%s\n' "$list" >&2
		echo "fuzz: cannot list the tests of $pkg" >&2
		exit 1
	fi
	for target in $(printf '%s\n' "$list" | grep '^Fuzz' || true); do
		count=$((count + 1))
		echo "== fuzz $pkg $target ($FUZZTIME)"
		$GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
echo "fuzz: ran $count target(s) for $FUZZTIME each"
