import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { ConfigError } from '../../agent/src/errors';
import { loadPublicKey, verifySignature } from '../../agent/src/payload/signature';

const pair = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const rawB64 = (pair.publicKey.export({ format: 'jwk' }).x as string).replace(/-/g, '+').replace(/_/g, '/') + '=';
const body = Buffer.from('SERVICE_NAME=php,PORTS=80\n');
const sig = sign(null, body, pair.privateKey).toString('base64');

const noFiles = (p: string): Buffer => {
  throw new Error(`ENOENT: no such file, open '${p}'`);
};
const files = (map: Record<string, string>) => (p: string): string => {
  const v = map[p];
  if (v === undefined) return noFiles(p) as never;
  return v;
};

function configError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.key, 'payload.publicKey');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('loadPublicKey', () => {
  it('reads a PEM file through the given reader', () => {
    const key = loadPublicKey('/etc/cartridge-agent/payload.pub', files({ '/etc/cartridge-agent/payload.pub': pem }));
    assert.equal(key.asymmetricKeyType, 'ed25519');
    assert.ok(verifySignature(body, sig, key));
  });

  it('builds a key from base64 of the 32 raw bytes', () => {
    assert.equal(Buffer.from(rawB64, 'base64').length, 32);
    const key = loadPublicKey(rawB64, noFiles);
    assert.ok(verifySignature(body, sig, key));
    assert.ok(!verifySignature(body, sig, loadPublicKey(Buffer.alloc(32, 7).toString('base64'), noFiles)));
  });

  it('bad specs are ConfigErrors naming payload.publicKey', () => {
    configError(() => loadPublicKey('/missing.pem', noFiles), /cannot read the public key file \/missing\.pem: ENOENT/);
    configError(() => loadPublicKey(Buffer.alloc(31).toString('base64'), noFiles), /decodes to 31 bytes/);
    configError(() => loadPublicKey('not base64!', noFiles), /it is not base64/);
    configError(() => loadPublicKey('relative/path.pem', noFiles), /absolute path to a PEM file or base64/);
    configError(() => loadPublicKey('/k.pem', files({ '/k.pem': 'hello' })), /\/k\.pem is not a PEM public key/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    configError(() => loadPublicKey('/rsa.pem', files({ '/rsa.pem': rsa })), /holds a rsa key; an Ed25519 public key is required/);
    const priv = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    configError(() => loadPublicKey('/priv.pem', files({ '/priv.pem': priv })), /holds a PRIVATE key/);
  });
});

describe('verifySignature', () => {
  const key = loadPublicKey(rawB64, noFiles);

  it('accepts the right signature over the exact bytes', () => {
    assert.equal(verifySignature(body, sig, key), true);
    assert.equal(verifySignature(body, ` ${sig}\t`, key), true);
  });

  it('refuses tampered bodies, other keys and malformed signatures', () => {
    assert.equal(verifySignature(Buffer.from('SERVICE_NAME=php,PORTS=81\n'), sig, key), false);
    assert.equal(verifySignature(Buffer.concat([body, Buffer.from(' ')]), sig, key), false);
    assert.equal(verifySignature(body, sign(null, body, other.privateKey).toString('base64'), key), false);
    const flipped = Buffer.from(sig, 'base64');
    flipped[10] = (flipped[10] as number) ^ 1;
    assert.equal(verifySignature(body, flipped.toString('base64'), key), false);
    assert.equal(verifySignature(body, sig.slice(0, 40), key), false);
    assert.equal(verifySignature(body, '', key), false);
    assert.equal(verifySignature(body, `${sig}!`, key), false);
  });
});

describe('loadPublicKey: base64 starting with a slash', () => {
  it('a base64 public key that starts with "/" is a key, not a path', () => {
    // Find a key whose base64 begins with '/' (1 in 64).
    for (let i = 0; i < 2000; i++) {
      const { publicKey } = generateKeyPairSync('ed25519');
      const b64 = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
      if (!b64.startsWith('/')) continue;
      const key = loadPublicKey(b64, () => {
        throw new Error('must not read a file');
      });
      assert.equal(key.asymmetricKeyType, 'ed25519');
      return;
    }
    assert.fail('no key starting with "/" in 2000 tries');
  });
});
