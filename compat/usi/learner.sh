#!/bin/sh
# Course-harness interface: ./learner.sh <id> <config>. Runs this project's "paxos learner".
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
exec node "$here/../../bin/paxos.js" learner "$@"
