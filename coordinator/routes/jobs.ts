import type { FastifyPluginAsync } from 'fastify';
import { existsSync, readFileSync } from 'node:fs';
import { routes } from '../../src/federation/protocol/routes.ts';
import type { SignedManifest } from '../../src/federation/manifest.ts';
import type { LedgerEntry } from '../../src/privacy/ledger/entries.ts';
import type { JobEngine } from '../job-engine.ts';
import { defineRoute, type CoordinatorApp } from './define.ts';

/** Registering a job, and what any key of the job may read: status, manifest, ledger. */
export const jobRoutes: FastifyPluginAsync<{ engine: JobEngine }> = async (app, { engine }) => {
  const a = app as unknown as CoordinatorApp;
  defineRoute(a, routes.createJob, async (req) => {
    const { ledgerGenesis, ...signed } = req.body;
    const manifest = await engine.createJob(signed as SignedManifest, ledgerGenesis as LedgerEntry);
    return { jobId: manifest.jobId };
  });
  defineRoute(a, routes.status, (req) => engine.status(req.params.jobId));
  defineRoute(a, routes.manifest, (req) => ({
    ...engine.signedManifest(req.params.jobId),
    ledgerManifestHash: engine.manifestEntryHash(req.params.jobId),
    ledgerGenesis: engine.manifestEntry(req.params.jobId),
  }));
  defineRoute(a, routes.ledgerHead, (req) => engine.ledgerHead(req.params.jobId));
  defineRoute(a, routes.ledger, (req) => {
    const path = engine.ledgerPath(req.params.jobId);
    return existsSync(path) ? readFileSync(path) : new Uint8Array(0);
  });
};
