/**
 * Lifecycle hooks with real executables (#! shell scripts in a temporary image root, --root
 * style): order, environment byte for byte, output in the log, failures, timeouts that kill
 * the whole process group, skipped and refused entries, cancellation.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { HookRunner } from '../../agent/src/lifecycle/hooks';
import { silentLogger } from '../../agent/src/log';
import { capturingLogger, diesWithin, HOOKS_DIR, makeHooksRoot, type HooksRoot } from '../fixtures/hooks/hooks-root';

let img: HooksRoot;
beforeEach(() => {
  img = makeHooksRoot();
});
afterEach(() => img.cleanup());

const runner = (opts: Partial<ConstructorParameters<typeof HookRunner>[0]> = {}) =>
  new HookRunner({ dir: HOOKS_DIR, paths: img.paths, timeoutMs: 10_000, graceMs: 500, log: silentLogger(), baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, ...opts });

const appendName = (name: string) => `#!/bin/sh\necho ${name} >> "$OUT_DIR/order"\n`;

test('hooks run one at a time in C-locale name order; dotfiles, backups and non-executables are skipped', async () => {
  img.hook('started', '20-b', appendName('20-b'));
  img.hook('started', '10-a', appendName('10-a'));
  img.hook('started', '9-c', appendName('9-c'));
  img.hook('started', 'Z-upper', appendName('Z-upper'));
  img.hook('started', '.hidden', appendName('.hidden'));
  img.hook('started', '15-old~', appendName('15-old~'));
  img.hook('started', '15-x.dpkg-old', appendName('dpkg'));
  img.hook('started', '15-disabled', appendName('15-disabled'), 0o644);
  img.hook('activated', '10-other-event', appendName('other-event'));
  const { log, records } = capturingLogger();
  const results = await runner({ log }).run('started', new Map([['OUT_DIR', img.out]]));
  assert.deepEqual(readFileSync(path.join(img.out, 'order'), 'utf8').split('\n').filter(Boolean), ['10-a', '20-b', '9-c', 'Z-upper']);
  assert.deepEqual(results.map((r) => [r.hook, r.ok, r.code]), [
    ['started.d/10-a', true, 0],
    ['started.d/20-b', true, 0],
    ['started.d/9-c', true, 0],
    ['started.d/Z-upper', true, 0],
  ]);
  const skipped = records.filter((r) => r.msg.startsWith('hook skipped')).map((r) => `${r.hook} ${r.msg}`);
  assert.deepEqual(skipped.sort(), [
    'started.d/.hidden hook skipped: hidden file',
    'started.d/15-disabled hook skipped: not executable',
    'started.d/15-old~ hook skipped: editor backup',
    'started.d/15-x.dpkg-old hook skipped: package manager leftover',
  ]);
});

test('the payload arrives in the environment exactly (quotes, newlines, $), with CARTRIDGE_EVENT; no NOTIFY_SOCKET; cwd is the event dir', async () => {
  const tricky = `it's "quoted" $HOME \`id\` \\n\nsecond line\n\ttab; rm -rf / #`;
  img.hook(
    'activated',
    '10-env',
    `#!/bin/sh
printf '%s' "$TRICKY" > "$OUT_DIR/tricky"
printf '%s|%s|%s|%s' "$CARTRIDGE_EVENT" "\${NOTIFY_SOCKET-unset}" "$APP_MODE" "$PWD" > "$OUT_DIR/vars"
`,
  );
  const payload = new Map([
    ['OUT_DIR', img.out],
    ['TRICKY', tricky],
    ['APP_MODE', 'from-payload'],
  ]);
  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', APP_MODE: 'from-agent', NOTIFY_SOCKET: '/run/systemd/notify' };
  const [r] = await runner({ baseEnv }).run('activated', payload);
  assert.equal(r?.ok, true, JSON.stringify(r));
  assert.equal(readFileSync(path.join(img.out, 'tricky'), 'utf8'), tricky);
  const eventDir = path.join(img.paths.resolve(HOOKS_DIR), 'activated.d');
  assert.equal(readFileSync(path.join(img.out, 'vars'), 'utf8'), `activated|unset|from-payload|${eventDir}`);
});

test('hook output goes to the log line by line under the hook name (stderr as warn), secrets scrubbed, capped', async () => {
  img.hook('started', '10-talk', '#!/bin/sh\necho "hello from stdout"\necho "oops on stderr" >&2\necho "password is $DB_PASSWORD"\nprintf "no newline at end"\n');
  img.hook('started', '20-flood', '#!/bin/sh\ni=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done\n');
  const { log, records } = capturingLogger();
  const results = await runner({ log, maxOutputLines: 10 }).run('started', new Map([['DB_PASSWORD', 'hunter22']]));
  assert.ok(results.every((r) => r.ok));
  const lines = (hook: string, stream?: string) =>
    records.filter((r) => r.hook === hook && r.stream && (!stream || r.stream === stream)).map((r) => `${r.level} ${r.stream} ${r.msg}`);
  // Two pipes: the order between stdout and stderr lines is not defined, within each it is.
  assert.deepEqual(lines('started.d/10-talk', 'stdout'), ['30 stdout hello from stdout', '30 stdout password is [REDACTED]', '30 stdout no newline at end']);
  assert.deepEqual(lines('started.d/10-talk', 'stderr'), ['40 stderr oops on stderr']);
  assert.deepEqual(lines('started.d/20-flood'), Array.from({ length: 10 }, (_, i) => `30 stdout line ${i}`));
  assert.ok(records.some((r) => r.hook === 'started.d/20-flood' && r.droppedLines === 40), 'dropped lines are counted');
  assert.ok(!JSON.stringify(records).includes('hunter22'), 'the secret never reaches the log');
});

test('a failing hook is a result with its exit code; the hooks after it still run', async () => {
  img.hook('fault', '10-fail', '#!/bin/sh\necho failing >&2\nexit 3\n');
  img.hook('fault', '20-after', appendName('20-after'));
  const results = await runner().run('fault', new Map([['OUT_DIR', img.out]]), { extra: { CARTRIDGE_FAULT_REASON: 'test' } });
  assert.equal(results.length, 2);
  const [fail, after] = results;
  assert.deepEqual({ ...fail, durationMs: 0 }, { hook: 'fault.d/10-fail', ok: false, code: 3, signal: null, timedOut: false, durationMs: 0 });
  assert.equal(after?.ok, true);
  assert.equal(readFileSync(path.join(img.out, 'order'), 'utf8'), '20-after\n');
});

test('a hook that hangs is killed at the timeout with its whole process group (SIGTERM)', async () => {
  img.hook('started', '10-hang', '#!/bin/sh\nsleep 60 &\necho $! > "$OUT_DIR/sleep.pid"\nwait\n');
  const started = Date.now();
  const [r] = await runner({ timeoutMs: 700, graceMs: 2_000 }).run('started', new Map([['OUT_DIR', img.out]]));
  const took = Date.now() - started;
  assert.equal(r?.ok, false);
  assert.equal(r?.timedOut, true);
  assert.equal(r?.signal, 'SIGTERM');
  assert.equal(r?.code, null);
  assert.ok(took >= 650 && took < 2_000, `returned after ${took} ms`);
  const sleepPid = Number(readFileSync(path.join(img.out, 'sleep.pid'), 'utf8'));
  assert.ok(sleepPid > 0);
  assert.equal(await diesWithin(sleepPid), true, 'the hook’s child (sleep 60) was killed too');
});

test('a hook that ignores SIGTERM is SIGKILLed after the grace', async () => {
  img.hook('started', '10-stubborn', "#!/bin/sh\ntrap '' TERM\nsleep 60 &\necho $! > \"$OUT_DIR/sleep.pid\"\nwait\nsleep 60\n");
  const started = Date.now();
  const [r] = await runner({ timeoutMs: 500, graceMs: 500 }).run('started', new Map([['OUT_DIR', img.out]]));
  const took = Date.now() - started;
  assert.equal(r?.timedOut, true);
  assert.equal(r?.signal, 'SIGKILL');
  assert.ok(took >= 950 && took < 3_000, `returned after ${took} ms`);
  assert.equal(await diesWithin(Number(readFileSync(path.join(img.out, 'sleep.pid'), 'utf8'))), true);
});

test('a missing hooks directory (or event directory) means no hooks', async () => {
  assert.deepEqual(await runner().run('maintenance', new Map()), []);
  img.hook('started', '10-a', appendName('10-a'));
  assert.deepEqual(await runner().run('ready-to-shutdown', new Map()), []);
  assert.deepEqual(await runner({ dir: '/no/such/hooks' }).run('started', new Map()), []);
});

test('an executable that is neither #! nor ELF is refused as a failure, not run by an implicit /bin/sh', async () => {
  img.hook('started', '10-noshebang', `echo ran > "$OUT_DIR/ran"\n`);
  const [r] = await runner().run('started', new Map([['OUT_DIR', img.out]]));
  assert.equal(r?.ok, false);
  assert.match(r?.error ?? '', /neither a #! script nor an ELF binary/);
  assert.throws(() => readFileSync(path.join(img.out, 'ran')), /ENOENT/);
});

test('a #! naming a missing interpreter is a failure with the reason', async () => {
  img.hook('started', '10-badinterp', '#!/no/such/interpreter\n');
  const [r] = await runner().run('started', new Map());
  assert.equal(r?.ok, false);
  assert.equal(r?.code, null);
  assert.match(r?.error ?? '', /cannot run: ENOENT/);
});

test('stop() (or the caller’s signal) terminates the running hook and skips the rest', async () => {
  img.hook('ready-to-shutdown', '10-slow', '#!/bin/sh\nsleep 60\n');
  img.hook('ready-to-shutdown', '20-never', appendName('20-never'));
  const hooks = runner({ timeoutMs: 30_000 });
  const running = hooks.run('ready-to-shutdown', new Map([['OUT_DIR', img.out]]));
  await new Promise((r) => setTimeout(r, 300));
  hooks.stop();
  const results = await running;
  assert.equal(results.length, 1);
  assert.equal(results[0]?.signal, 'SIGTERM');
  assert.match(results[0]?.error ?? '', /cancelled/);
  assert.throws(() => readFileSync(path.join(img.out, 'order')), /ENOENT/);

  const ac = new AbortController();
  ac.abort();
  const none = await hooks.run('ready-to-shutdown', new Map([['OUT_DIR', img.out]]), { signal: ac.signal });
  assert.deepEqual(none, []);
});

test('fromConfig resolves hooks.dir under --root and uses hooks.timeoutSeconds', async () => {
  img.hook('started', '10-a', appendName('10-a'));
  const hooks = HookRunner.fromConfig({ hooks: { dir: HOOKS_DIR, timeoutSeconds: 7 } }, img.paths, silentLogger());
  assert.equal(hooks.dir, path.join(img.root, 'etc/cartridge-agent/hooks'));
  const listed = await hooks.list('started');
  assert.deepEqual(listed.hooks.map((h) => h.hook), ['started.d/10-a']);
});
