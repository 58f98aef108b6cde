import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SourceError } from '../../agent/src/errors';
import { parseBlkidExport } from '../../agent/src/sources/blockdev';
import { checkInstanceId } from '../../agent/src/sources/common';
import { parseConfigDriveMetaData } from '../../agent/src/sources/configdrive-tree';

test('blkid -o export: one entry per device block, escapes undone', () => {
  const out = 'DEVNAME=/dev/sr0\nBLOCK_SIZE=2048\nUUID=2024-01-01-00-00-00-00\nLABEL=config-2\nTYPE=iso9660\n\nDEVNAME=/dev/loop7\nLABEL=my\\ disk\nTYPE=ext4\n';
  assert.deepEqual(parseBlkidExport(out), [
    { device: '/dev/sr0', label: 'config-2', type: 'iso9660' },
    { device: '/dev/loop7', label: 'my disk', type: 'ext4' },
  ]);
  assert.deepEqual(parseBlkidExport(''), []);
});

test('config drive meta_data.json: uuid and files[]', () => {
  const meta = parseConfigDriveMetaData(
    JSON.stringify({ uuid: '83679162-1378-4288-a2d4-70e13ec132aa', files: [{ path: '/etc/x', content_path: '/content/0000' }] }),
    'configdrive',
    'meta',
  );
  assert.equal(meta.uuid, '83679162-1378-4288-a2d4-70e13ec132aa');
  assert.deepEqual(meta.files, [{ path: '/etc/x', contentPath: '/content/0000' }]);
});

test('config drive meta_data.json: broken documents name what is wrong', () => {
  const bad = (text: string, pattern: RegExp): void =>
    assert.throws(() => parseConfigDriveMetaData(text, 'configdrive', '/cd/openstack/latest/meta_data.json'), (err: unknown) =>
      err instanceof SourceError && err.where === '/cd/openstack/latest/meta_data.json' && pattern.test(err.message));
  bad('{not json', /not valid JSON/);
  bad('[]', /not a JSON object/);
  bad('{"name":"x"}', /no "uuid" string/);
  bad('{"uuid":"a b"}', /instance id must be/);
  bad('{"uuid":"u","files":{}}', /"files" is not an array/);
  bad('{"uuid":"u","files":[{"path":"/etc/x"}]}', /files\[0\] needs string "path" and "content_path"/);
});

test('instance ids: printable tokens pass (trimmed), others are refused', () => {
  assert.equal(checkInstanceId(' i-0abc123\n', 'ec2', 'x'), 'i-0abc123');
  assert.throws(() => checkInstanceId('', 'ec2', 'x'), SourceError);
  assert.throws(() => checkInstanceId('a\nb', 'ec2', 'x'), SourceError);
  assert.throws(() => checkInstanceId('x'.repeat(256), 'ec2', 'x'), SourceError);
});
