import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSchema } from '../../../src/data/schema.ts';
import { readPsiIds } from '../../../src/vertical/psi/read-ids.ts';
import { identities, makeSpec } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'psi-ids-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reading ids from a partner CSV', () => {
  const spec = makeSpec(identities(2));
  it('reads the spec’s id column in file order, with quoting and CRLF, and checks the schema role', async () => {
    const file = join(dir, 'a.csv');
    writeFileSync(file, '\ufeffage,customer_id,y\r\n31,"Jane@X.io",no\r\n44,"bob, jr@x.io",yes\r\n\r\n52,c@x.io,no\r\n');
    const r = await readPsiIds(file, spec);
    expect(r.ids).toEqual(['Jane@X.io', 'bob, jr@x.io', 'c@x.io']);
    expect(Array.from(r.lines)).toEqual([2, 3, 5]);
    const schema = parseSchema({
      name: 's',
      columns: [
        { name: 'age', type: 'numeric', min: 0, max: 120 },
        { name: 'customer_id', role: 'id' },
        { name: 'y', role: 'label', positive: ['yes'], negative: ['no'] },
      ],
    });
    await expect(readPsiIds(file, spec, { schema })).resolves.toMatchObject({ ids: r.ids });
    const wrongRole = parseSchema({
      ...schema,
      columns: schema.columns.map((c) => (c.name === 'customer_id' ? { name: 'customer_id', role: 'ignore' as const } : c)),
    });
    await expect(readPsiIds(file, spec, { schema: wrongRole })).rejects.toMatchObject({ code: 'PSI_ID_COLUMN' });
  });

  it('names a missing column and a ragged row', async () => {
    const file = join(dir, 'b.csv');
    writeFileSync(file, 'email,y\na@x.io,1\n');
    await expect(readPsiIds(file, spec)).rejects.toThrow(/no column "customer_id" in the header \("email", "y"\)/);
    writeFileSync(file, 'customer_id,y\na@x.io,1\nb@x.io\n');
    await expect(readPsiIds(file, spec)).rejects.toThrow(/:3: expected 2 fields, found 1/);
  });
});
