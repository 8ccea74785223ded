#!/bin/sh
# Course-harness interface: ./proposer.sh <id> <config>. Runs this project's "paxos proposer".
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
exec node "$here/../../bin/paxos.js" proposer "$@"
