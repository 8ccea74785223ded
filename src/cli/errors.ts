/** A mistake in how the command was called: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * The command was called right but cannot start here (its data directory is in use, is not a
 * directory, cannot be created or written): printed as one line, exit status 1.
 */
export class StartError extends Error {
  override readonly name = "StartError";
}
