import type { Logger } from 'pino';
import type { PublicIdentity } from '../../src/crypto/identity.ts';
import type { Dataset } from '../../src/data/encode.ts';
import type { JobManifest } from '../../src/federation/manifest.ts';
import type { PartnerRuntime } from '../../src/federation/partner-runtime.ts';
import type { CoordinatorClient } from '../../src/federation/protocol/client.ts';
import type { PartnerLedger } from '../ledger.ts';
import type { PartnerNodeOptions } from '../node.ts';

/** What every step of a partner node works with, once the job is joined and its key is open. */
export interface PartnerContext {
  readonly o: PartnerNodeOptions;
  readonly client: CoordinatorClient;
  readonly ledger: PartnerLedger;
  readonly log: Logger;
  readonly manifest: JobManifest;
  readonly myKeyId: string;
  /** The coordinator as this node verified it at join time (its key signs the heads the node witnesses). */
  readonly coordinator: PublicIdentity;
  readonly runtime: PartnerRuntime;
  /** Attempts already reported as withheld (warned once each). */
  readonly warned: Set<string>;
  /** The rows this node uses now (consent withdrawals remove rows between rounds). */
  data: { train: Dataset; test: Dataset; totalWithdrawn: number };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
