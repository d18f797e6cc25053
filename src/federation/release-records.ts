import type { AttemptReleases, ReleaseRecord } from '../privacy/ledger/entries.ts';
import type { DpReport } from './update-codec.ts';

/**
 * The one place a partner's DP report becomes the ledger's record of what it released in one
 * attempt: the partner writes it (`partner.release`) before its upload leaves, the coordinator
 * writes the same record from the upload (`round`, `evaluation`, `attempt.failed`), and the audit
 * compares the two.
 */
export function attemptReleases(partner: string, attempt: number, dp: DpReport, ciphertextHashes: string[]): AttemptReleases {
  return {
    partner,
    attempt,
    releases: dp.releases.map((r) => ({
      label: r.label,
      samplingRate: r.samplingRate,
      noiseMultiplier: r.noiseMultiplier,
      steps: r.steps,
      sensitivity: r.sensitivity,
    })),
    delta: dp.delta,
    epsilonSpent: dp.epsilonSpent,
    epsilonCumulative: dp.epsilonAfterRound,
    ciphertextHashes,
  };
}

/** The release the version-2 fields of a round record describe: the `update` (DP-SGD) release if there is one, else the first. */
export function primaryRelease(releases: readonly ReleaseRecord[]): ReleaseRecord {
  return releases.find((r) => r.label === 'update') ?? releases[0];
}

/** A round record in the version-2 shape (one release's q, σ, C, steps) plus the version-3 `attempt` and `releases`. */
export function roundRecord(r: AttemptReleases) {
  const p = primaryRelease(r.releases);
  return {
    partner: r.partner,
    samplingRate: p.samplingRate,
    noiseMultiplier: p.noiseMultiplier,
    clipNorm: p.sensitivity,
    steps: p.steps,
    delta: r.delta,
    epsilonSpent: r.epsilonSpent,
    epsilonCumulative: r.epsilonCumulative,
    ciphertextHashes: r.ciphertextHashes,
    attempt: r.attempt,
    releases: r.releases,
  };
}
