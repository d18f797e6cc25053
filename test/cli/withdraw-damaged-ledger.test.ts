import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestCoordinator } from '../helpers/coordinator.ts';
import { makeIdentities, makeJob, telcoPartners } from '../helpers/partners.ts';
import { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import { publicIdentity, writeIdentityFile } from '../../src/crypto/identity.ts';
import { registerJob } from '../../owner/register.ts';
import { PartnerLedger } from '../../partner/ledger.ts';
import { readLedger } from '../../src/privacy/ledger/reader.ts';

const tsx = createRequire(import.meta.url).resolve('tsx/cli');
const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
// The coordinator runs in this process, so the CLI child is spawned asynchronously (a sync spawn would block it).
const fedmark = (...args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn(process.execPath, [tsx, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr += b));
    c.on('exit', (status) => resolve({ status, stdout, stderr }));
  });

describe('fedmark withdraw with a damaged local ledger (issue 19 item 9)', () => {
  it('still withdraws — the job ledger records it — and reports the damage with exit 1, leaving the local file as it was', async () => {
    const coord = await startTestCoordinator();
    try {
      const { schema } = await telcoPartners({ partners: 2, rowsPerPartner: 50 });
      const [owner, ...ids] = makeIdentities(['owner', 'bank-a', 'telco-b']);
      const { manifest, signed } = makeJob({ jobId: 'leave-anyway', schema, owner, partners: ids, rounds: 1 });
      await registerJob(new CoordinatorClient(coord.url, owner), signed, owner, null, null);
      const stateDir = join(coord.dir, 'bank-a');
      mkdirSync(stateDir);
      const idFile = join(coord.dir, 'bank-a.key.json');
      writeIdentityFile(idFile, ids[0]);
      const ledgerPath = join(stateDir, `${ids[0].name}.ledger.jsonl`);
      const l = PartnerLedger.open(ledgerPath, ids[0], stateDir);
      l.close();
      // Damage that no tool repairs: the genesis line edited.
      writeFileSync(ledgerPath, readFileSync(ledgerPath, 'utf8').replace('"role":"partner"', '"role":"owner"'));
      const damaged = readFileSync(ledgerPath);

      const r = await fedmark(
        'withdraw',
        '--coordinator',
        coord.url,
        '--job',
        manifest.jobId,
        '--identity',
        idFile,
        '--state-dir',
        stateDir,
        '--reason',
        'data-protection review',
      );
      expect(r.status, r.stderr).toBe(1);
      expect(r.stdout).toContain(`withdrew from job ${manifest.jobId} after round 0`);
      expect(r.stderr).toContain('the withdrawal is recorded in the job ledger only');
      expect(r.stderr).toContain(`fedmark ledger doctor ${ledgerPath}`);
      expect(readFileSync(ledgerPath).equals(damaged)).toBe(true);
      const job = readLedger(join(coord.dataDir, 'ledgers', `${manifest.jobId}.ledger.jsonl`));
      const w = job.entries.filter((e) => e.type === 'partner.withdraw');
      expect(w).toHaveLength(1);
      expect((w[0].payload as { partner: string }).partner).toBe(publicIdentity(ids[0]).keyId);
      expect(coord.store.partner(manifest.jobId, publicIdentity(ids[0]).keyId)!.status).toBe('withdrawn');
    } finally {
      await coord.close();
    }
  }, 60_000);
});
