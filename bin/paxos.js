#!/usr/bin/env node
import { main } from "../dist/cli/main.js";

// Long-running commands resolve when they have stopped cleanly; exit then, whatever handles remain.
process.exit(await main(process.argv.slice(2)));
