/**
 * The controller's secrets, made on first run in the state dir and never rewritten:
 *  - signing-key.pem  Ed25519 private key (PKCS#8 PEM): signs every payload response;
 *  - token-secret     32 random bytes (base64): HMAC key of member tokens;
 *  - admin-token      random bearer token for the admin API (terminate).
 * Files are 0600 in a 0700 dir. Creation is exclusive (temp file + link), so two commands
 * starting at once (serve and register) end up with the same secrets, never a torn or
 * replaced file.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { link } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, stageFile } from '../../agent/src/io/staged-write';
import { ControllerError, ControllerExit, describeError } from './errors';

export const SIGNING_KEY_FILE = 'signing-key.pem';
export const TOKEN_SECRET_FILE = 'token-secret';
export const ADMIN_TOKEN_FILE = 'admin-token';
const SECRET_MODE = 0o600;
const ED25519_SPKI_PREFIX_LENGTH = 12;

function stateError(message: string): ControllerError {
  return new ControllerError(message, ControllerExit.STATE);
}

/** Create the state dir (0700) if needed; refuse one that is not a directory. */
export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw stateError(`cannot create the state dir ${dir}: ${describeError(err)}`);
  }
  if (!statSync(dir).isDirectory()) throw stateError(`state dir ${dir} is not a directory`);
}

/** Create `file` with `make()`'s content unless it exists; either way return what is on disk. */
async function createOnce(file: string, make: () => string): Promise<string> {
  try {
    return readSecretFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let staged;
  try {
    staged = await stageFile(file, make(), { mode: SECRET_MODE, stage: 'controller keys' });
  } catch (err) {
    throw stateError(`cannot write ${file}: ${describeError(err)}`);
  }
  try {
    // link() fails with EEXIST instead of replacing: whoever linked first wins, the others read it.
    await link(staged.tempPath, file);
    await fsyncDir(path.dirname(file), 'controller keys');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw stateError(`cannot create ${file}: ${describeError(err)}`);
  } finally {
    await staged.discard();
  }
  return readSecretFile(file);
}

/** Read a secret file, refusing one that others can read (a leaked key must not be used quietly). */
function readSecretFile(file: string): string {
  const st = statSync(file); // ENOENT propagates to createOnce
  if (!st.isFile()) throw stateError(`${file} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw stateError(`${file} is accessible by group/others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
  return readFileSync(file, 'utf8');
}

export class ControllerKeys {
  private constructor(
    private readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
    /** HMAC key of member tokens. */
    readonly tokenSecret: Buffer,
    /** Bearer token of the admin API. */
    readonly adminToken: string,
  ) {}

  /** Load the state dir's secrets, creating whichever is missing. */
  static async loadOrCreate(stateDir: string): Promise<ControllerKeys> {
    ensureStateDir(stateDir);
    const at = (name: string) => path.join(stateDir, name);
    const pem = await createOnce(at(SIGNING_KEY_FILE), () =>
      generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    );
    const secretText = await createOnce(at(TOKEN_SECRET_FILE), () => `${randomBytes(32).toString('base64')}\n`);
    const adminToken = (await createOnce(at(ADMIN_TOKEN_FILE), () => `${randomBytes(24).toString('base64url')}\n`)).trim();

    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
    } catch (err) {
      throw stateError(`${at(SIGNING_KEY_FILE)} is not a PEM private key: ${describeError(err)}`);
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw stateError(`${at(SIGNING_KEY_FILE)} holds a ${privateKey.asymmetricKeyType ?? 'unknown'} key; an Ed25519 key is required`);
    }
    const tokenSecret = Buffer.from(secretText.trim(), 'base64');
    if (tokenSecret.length < 32) throw stateError(`${at(TOKEN_SECRET_FILE)} must hold at least 32 bytes of base64; it holds ${tokenSecret.length}`);
    if (adminToken.length < 16) throw stateError(`${at(ADMIN_TOKEN_FILE)} must hold a token of at least 16 characters`);
    return new ControllerKeys(privateKey, createPublicKey(privateKey), tokenSecret, adminToken);
  }

  /** What the agent's `payload.publicKey` takes: base64 of the 32 raw public key bytes. */
  publicKeyBase64(): string {
    return this.publicKey.export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX_LENGTH).toString('base64');
  }

  /** The public key as PEM (for an image that configures `payload.publicKey` as a file path). */
  publicKeyPem(): string {
    return this.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  }

  /** base64 Ed25519 signature over `bytes`: the X-Cartridge-Signature header value. */
  sign(bytes: Buffer): string {
    return sign(null, bytes, this.privateKey).toString('base64');
  }
}

