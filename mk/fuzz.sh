#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME. usage: fuzz.sh GO FUZZTIME LOGDIR PKG:FuzzName...
#
# go1.26's fuzz coordinator can end a duration-bound run with a bare
# "context deadline exceeded" and no failing input (golang/go#75804, fixed in
# go1.27): that race is reported and retried once, never counted as a find.
# Anything else that fails — an input written to testdata/fuzz, a panic, a
# failing seed — fails the run.
set -uo pipefail
go=$1 fuzztime=$2 logdir=$3
shift 3
mkdir -p "$logdir"
for t in "$@"; do
	pkg=${t%%:*} name=${t##*:} log=$logdir/fuzz-$name.log
	for try in 1 2; do
		echo "fuzz: $pkg $name for $fuzztime"
		if "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "./$pkg" >"$log" 2>&1; then
			break
		fi
		if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|--- FAIL: '"$name"'/' "$log"; then
			echo "fuzz: $name: the Go fuzz coordinator's deadline race (golang/go#75804), no failing input; $([[ $try == 1 ]] && echo 'running it again' || echo 'not a find')"
			continue
		fi
		grep -v '^fuzz: elapsed' "$log"
		exit 1
	done
done
