/** Controller errors carry the CLI exit code (documented in `cartridge-controller --help`). */

export const ControllerExit = {
  OK: 0,
  INTERNAL: 1,
  USAGE: 2,
  /** The state dir, its keys or the member store cannot be used. */
  STATE: 3,
  /** register: the payload (or the URL built from it) is refused. */
  PAYLOAD: 4,
  /** fleet / terminate: the running controller could not be reached or refused the request. */
  UNREACHABLE: 5,
  /** The member does not exist. */
  NOT_FOUND: 6,
} as const;
export type ControllerExit = (typeof ControllerExit)[keyof typeof ControllerExit];

export class ControllerError extends Error {
  constructor(
    message: string,
    readonly exitCode: ControllerExit,
  ) {
    super(message);
    this.name = 'ControllerError';
  }
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
