import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, publicIdentity } from '../../../src/crypto/identity.ts';
import { startTestCoordinator, type TestCoordinator } from '../../helpers/coordinator.ts';
import { coordinatorIdentity, runPsiJob, tempDir } from './helpers.ts';

let coord: TestCoordinator;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  coord = await startTestCoordinator({ tickMs: 40 });
  tmp = tempDir('fedmark-psi-pins-');
});
afterAll(async () => {
  await coord?.close();
  tmp?.cleanup();
});

const lists = [
  ['ann@example.com', 'bob@example.com', 'carol@example.com'],
  ['bob@example.com', 'carol@example.com', 'dave@example.com'],
];

describe("a vertical party's node under main's trust rules (owner pin, pinned coordinator)", () => {
  it('a party pinned to another owner refuses the job (on record in its own ledger); the job does not complete', async () => {
    const parties = ['bank', 'telco'].map((n) => generateIdentity(n));
    const stranger = publicIdentity(generateIdentity('someone-else')).keyId;
    const run = await runPsiJob({
      url: coord.url,
      jobId: 'psi-pin-other',
      parties,
      ids: lists,
      dir: tmp.dir,
      maxSetSize: 8,
      ownerPin: (i) => (i === 0 ? stranger : 'job'),
    });
    expect(run.nodes[0].state).toBe('refused');
    expect(run.nodes[0].reason).toContain(`not the pinned owner ${stranger}`);
    expect(run.nodes[0].outcome).toBeNull();
    expect(run.owner.state).not.toBe('completed');
  }, 90_000);

  it('control: parties pinned to the real owner and the real coordinator key align as before', async () => {
    const parties = ['bank', 'telco'].map((n) => generateIdentity(n));
    const coordinatorKeyId = (await coordinatorIdentity(coord.url)).keyId;
    const run = await runPsiJob({
      url: coord.url,
      jobId: 'psi-pin-real',
      parties,
      ids: lists,
      dir: tmp.dir,
      maxSetSize: 8,
      ownerPin: () => 'job',
      coordinatorKeyId,
    });
    expect(run.owner.state).toBe('completed');
    expect(run.nodes.map((n) => n.outcome!.intersectionSize)).toEqual([2, 2]);
  }, 90_000);
});
