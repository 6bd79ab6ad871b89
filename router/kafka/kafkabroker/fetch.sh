#!/usr/bin/env bash
# Fetches Apache Kafka's broker jars (pom.xml: org.apache.kafka:kafka_2.13 and
# its runtime dependencies) from Maven Central into the directory the
# real-broker tests read: $SHOVEL_KAFKA_LIBS, by default
# ~/.cache/shovel/kafka-<version>/libs (Go's os.UserCacheDir). Idempotent:
# does nothing when the broker jar is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
libs="${SHOVEL_KAFKA_LIBS:-${XDG_CACHE_HOME:-$HOME/.cache}/shovel/kafka-$version/libs}"
if [ -f "$libs/kafka_2.13-$version.jar" ]; then
	echo "kafka $version jars: $libs (cached)"
	exit 0
fi
command -v mvn >/dev/null || { echo "fetch.sh: Maven (mvn) is needed to fetch the Kafka jars" >&2; exit 1; }
tmp="$libs.tmp.$$"
rm -rf "$tmp"
log="$(mktemp)"
# Maven's own output only when it fails (-q still prints terminal escapes).
if ! mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
	-DoutputDirectory="$tmp" >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	exit 1
fi
rm -f "$log"
mkdir -p "$(dirname "$libs")"
rm -rf "$libs"
mv "$tmp" "$libs"
echo "kafka $version jars: $libs ($(ls "$libs" | wc -l) files)"
