#!/bin/bash
# `make test`: the whole suite, in two lanes at once. Most of the suite waits on real nodes (their
# health rounds, reboots and warm-ups), not on the CPU, so two lanes take about half the time on
# two cores. Each lane has its own loopback block (its own four nodes, shared WUI and real
# servers), test database, Redis database and state directory: they share nothing but the
# machine. Usage: tests/lanes.sh PYTHON [pytest arguments for both lanes]
set -u
py=$1
shift
base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/flotilla}
redis=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}
redis=${redis%/*}
mkdir -p var

# name, loopback block, Redis database, test paths
lane() {
	local name=$1 prefix=$2 db=$3
	shift 3
	exec env DATABASE_URL="${base}_$name" CELERY_BROKER_URL="$redis/$db" FLOTILLA_TEST_PREFIX="$prefix" \
		FLOTILLA_VAR_DIR="$PWD/var/test-$name" DJANGO_ALLOW_ASYNC_UNSAFE=true FLOTILLA_TEST_FAST_PASSWORD_HASH=true \
		"$py" -m pytest -p no:cacheprovider "$@" >"var/test-$name.log" 2>&1
}

# The split keeps the lanes about equal in time: tests/cluster is more than half of the suite, so
# its two longest browser walks go with the rest.
walks="tests/cluster/test_operator_browser.py tests/cluster/test_browser.py"
lane a 127.0.11 15 tests/cluster tests/api $(printf -- '--ignore=%s ' $walks) "$@" &
a=$!
lane b 127.0.13 14 tests/foundation tests/firmware tests/backup $walks "$@" &
b=$!
trap 'kill $a $b 2>/dev/null; wait' INT TERM
wait $a
status_a=$?
wait $b
status_b=$?

for name in a b; do
	echo "===== lane $name (var/test-$name.log)"
	cat "var/test-$name.log"
done
if [ $status_a -ne 0 ] || [ $status_b -ne 0 ]; then
	echo "FAILED: lane a exit $status_a, lane b exit $status_b"
	exit 1
fi
echo "Both lanes passed."
