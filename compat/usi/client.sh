#!/bin/sh
# Course-harness interface: ./client.sh <id> <config>. Runs this project's "paxos client".
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
exec node "$here/../../bin/paxos.js" client "$@"
