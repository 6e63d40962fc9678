#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME. usage: fuzz.sh GO FUZZTIME LOGDIR JOBS PKG:FuzzName...
#
# The targets are dealt round-robin into JOBS lanes that run side by side,
# each target with one fuzz worker (-parallel 1): on CI's two cores two
# lanes keep both busy while one lane compiles its next target, so the
# run takes about half the wall time of one lane with two workers, for
# the same fuzzing CPU time in all.
#
# go1.26's fuzz coordinator can end a duration-bound run with a bare
# "context deadline exceeded" and no failing input (golang/go#75804, fixed in
# go1.27): that race is reported and retried once, never counted as a find.
# Anything else that fails — an input written to testdata/fuzz, a panic, a
# failing seed — fails the run.
set -uo pipefail
go=$1 fuzztime=$2 logdir=$3 jobs=$4
shift 4
mkdir -p "$logdir"
(( jobs >= 1 )) || jobs=1

# lane N runs targets N, N+jobs, N+2·jobs, … and exits 1 on the first find.
lane() {
	local n=$1 i=0 t pkg name log try
	shift
	for t in "$@"; do
		(( i++ % jobs == n )) || continue
		# The log is named by package and target: several packages have
		# a FuzzParse, and one lane's log must not overwrite another's.
		pkg=${t%%:*} name=${t##*:}
		log=$logdir/fuzz-${pkg//\//-}-$name.log
		for try in 1 2; do
			echo "fuzz: $pkg $name for $fuzztime"
			if "$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s -parallel 1 "./$pkg" >"$log" 2>&1; then
				break
			fi
			if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|--- FAIL: '"$name"'/' "$log"; then
				echo "fuzz: $name: the Go fuzz coordinator's deadline race (golang/go#75804), no failing input; $([[ $try == 1 ]] && echo 'running it again' || echo 'not a find')"
				continue
			fi
			grep -v '^fuzz: elapsed' "$log" | sed "s/^/fuzz: $name: /"
			return 1
		done
	done
}

pids=()
for (( n = 0; n < jobs; n++ )); do
	lane "$n" "$@" &
	pids+=($!)
done
status=0
for p in "${pids[@]}"; do
	wait "$p" || status=1
done
exit $status
