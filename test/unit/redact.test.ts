import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeVars, isSecretName, REDACTED, redactDeep, redactUrl } from '../../agent/src/redact';

test('URL credentials and query values are redacted', () => {
  assert.equal(redactUrl('https://user:pw@ctl.example:8443/payload/m1?token=abc.def&x=1'), `https://ctl.example:8443/payload/m1?token=${REDACTED}&x=${REDACTED}`);
  assert.equal(redactUrl('fetch http://10.0.0.1/p?token=s3cr3t failed'), `fetch http://10.0.0.1/p?token=${REDACTED} failed`);
  assert.equal(redactUrl('no url here'), 'no url here');
});

test('secret-looking names are redacted deeply, others kept', () => {
  for (const name of ['MB_PASSWORD', 'DB_PASSWD', 'API_SECRET', 'TOKEN', 'CARTRIDGE_KEY', 'privateKey']) assert.ok(isSecretName(name), name);
  for (const name of ['PORTS', 'SERVICE_NAME', 'MB_IP']) assert.ok(!isSecretName(name), name);
  const out = redactDeep({ a: { MB_PASSWORD: 'hunter2', PORTS: '80' }, url: 'http://h/?token=t' }) as Record<string, Record<string, string>>;
  assert.deepEqual(out, { a: { MB_PASSWORD: REDACTED, PORTS: '80' }, url: `http://h/?token=${REDACTED}` });
  assert.deepEqual(describeVars(new Map([['TOKEN', 'x'], ['A', 'b']])), { TOKEN: REDACTED, A: 'b' });
});

test('broker URLs lose their credentials and query values too', () => {
  assert.equal(redactUrl('broker mqtt://agent:s3cret@b:1883 down'), 'broker mqtt://b:1883 down');
  assert.equal(redactUrl('mqtts://u:p@b:8883/?x=1'), 'mqtts://b:8883/?x=[REDACTED]');
  assert.equal(redactUrl('wss://u:p@b/mqtt'), 'wss://b/mqtt');
});
