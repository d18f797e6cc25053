import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The import boundaries of docs/ARCHITECTURE.md, as the lint enforces them (eslint.config.js). */
const eslint = new ESLint({ cwd: fileURLToPath(new URL('../../', import.meta.url)) });

async function refusals(filePath: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${source}\nexport const used = x;\n`, { filePath });
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('import boundaries', () => {
  it('the library never imports a node, the CLI or tests', async () => {
    for (const target of [
      '../../coordinator/store.ts',
      '../../partner/node.ts',
      '../../owner/node.ts',
      '../../cli/demo.ts',
      '../../test/helpers/partners.ts',
    ]) {
      expect(await refusals('src/federation/x.ts', `import { x } from '${target}';`), target).toHaveLength(1);
    }
    expect(await refusals('src/federation/x.ts', `import { x } from './partner-runtime.ts';`)).toEqual([]);
  });

  it('nodes never import each other', async () => {
    expect(await refusals('partner/x.ts', `import { x } from '../coordinator/job-engine.ts';`)).toHaveLength(1);
    expect(await refusals('partner/steps/x.ts', `import { x } from '../../owner/node.ts';`)).toHaveLength(1);
    expect(await refusals('owner/x.ts', `import { x } from '../partner/ledger.ts';`)).toHaveLength(1);
    expect(await refusals('coordinator/x.ts', `import { x } from '../owner/genesis.ts';`)).toHaveLength(1);
    expect(await refusals('partner/x.ts', `import { x } from '../src/federation/protocol/client.ts';`)).toEqual([]);
  });

  it('only tests import test/; the CLI composes the nodes', async () => {
    expect(await refusals('cli/x.ts', `import { x } from '../test/helpers/partners.ts';`)).toHaveLength(1);
    expect(await refusals('benchmarks/load/x.ts', `import { x } from '../../test/helpers/partners.ts';`)).toHaveLength(1);
    expect(await refusals('cli/x.ts', `import { x } from '../partner/node.ts';`)).toEqual([]);
    expect(await refusals('test/e2e/x.test.ts', `import { x } from '../helpers/partners.ts';`)).toEqual([]);
  });
});
