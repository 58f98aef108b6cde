export type PayloadFormat = 'launch-params' | 'dotenv' | 'json';

/** A validated payload: names checked, values exportable, order kept as received. */
export interface Payload {
  readonly vars: ReadonlyMap<string, string>;
  readonly format: PayloadFormat;
  /** sha256 hex of the raw payload bytes: reported in health, keys the cache. */
  readonly digest: string;
}

/** What decoded user data (or a personality file) points at. */
export type PayloadRef =
  | { kind: 'urls'; urls: string[] }
  | { kind: 'inline'; bytes: Buffer };
