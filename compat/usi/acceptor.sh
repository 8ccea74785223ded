#!/bin/sh
# Course-harness interface: ./acceptor.sh <id> <config>. Runs this project's "paxos acceptor".
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
exec node "$here/../../bin/paxos.js" acceptor "$@"
