#!/bin/sh
# Course-harness interface: ./acceptor.sh <id> <config>. Runs this project's "paxos acceptor".
#
# An acceptor restarted without its state must not vote on promises it forgot, so "paxos acceptor"
# votes with no state only when told --new. The harness starts an acceptor the same way the first
# time and after a kill, so this script tells the two apart: it keeps a marker per run (the parent
# process, which starts the whole run, and the config file) in ${TMPDIR:-/tmp}/paxos-usi-runs. The
# first start of acceptor <id> in a run creates the marker and passes --new; a restart finds it and
# does not, and the acceptor, with no state, stays silent (docs/harness.md). Markers of runs whose
# parent process is gone are removed. Without a place for markers, every start is --new (as before).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
runs="${TMPDIR:-/tmp}/paxos-usi-runs"
if [ $# -ge 2 ] && mkdir -p "$runs" 2>/dev/null; then
  # The parent's start time (field 22 of /proc/PID/stat) keeps a reused pid from matching.
  started=$(sed 's/.*) //' "/proc/$PPID/stat" 2>/dev/null | cut -d' ' -f20)
  config=$(cd "$(dirname -- "$2")" 2>/dev/null && pwd)/$(basename -- "$2")
  key=$(printf '%s' "$config" | cksum | cut -d' ' -f1)
  for old in "$runs"/*; do
    [ -e "$old" ] || continue
    pid=${old##*/}
    pid=${pid%%-*}
    kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ] || rm -f "$old"
  done
  marker="$runs/$PPID-${started:-0}-$key-acceptor-$1"
  # set -C: create the marker only if it is not there (atomic).
  if (set -C && : >"$marker") 2>/dev/null; then
    set -- "$@" --new
  fi
elif [ $# -ge 2 ]; then
  echo "acceptor.sh: cannot keep run markers in $runs: starting as a new acceptor" >&2
  set -- "$@" --new
fi
exec node "$here/../../bin/paxos.js" acceptor "$@"
