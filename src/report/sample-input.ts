/**
 * A complete, realistic ReportInput built from synthetic data — for `fedmark report --sample`, docs
 * screenshots and the report tests. The evaluation is genuinely computed: three partners with
 * different (non-IID) customer bases score a hold-out, build fixed-bin histograms with
 * src/metrics/histogram.ts, and the summed vector yields the metrics, exactly as in a real job.
 * The per-round ε values are NOT from an accountant: they follow the √rounds growth typical of
 * composed Gaussian mechanisms and are labelled synthetic in the job's dataset name.
 */
import { createRng, deriveSeed, type Rng } from '../util/rng.ts';
import { buildEvalHistograms, histogramLayout, metricsFromHistograms, sumHistograms } from '../metrics/histogram.ts';
import type { ReportInput } from './schema.ts';

const AGE = ['18-34', '35-54', '55+'];
const REGION = ['north', 'south', 'west'];

interface PartnerSpec {
  name: string;
  rows: number;
  shift: number;
  maxEpsilon: number;
  finalEpsilon: number;
}

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

function scorePartner(rng: Rng, p: PartnerSpec, signal: number) {
  const scores = new Float64Array(p.rows);
  const labels = new Uint8Array(p.rows);
  const age: string[] = [];
  const region: string[] = [];
  for (let i = 0; i < p.rows; i++) {
    const a = AGE[rng.int(3)];
    const r = REGION[rng.int(3)];
    const groupEffect = a === '55+' ? -0.8 : a === '35-54' ? 0.25 : 0;
    const latent = rng.normal();
    labels[i] = rng.next() < sigmoid(-2.5 + p.shift + 1.5 * latent + groupEffect) ? 1 : 0;
    scores[i] = sigmoid(-2.3 + p.shift + signal * latent + groupEffect + 0.8 * rng.normal());
    age.push(a);
    region.push(r);
  }
  return { scores, labels, segments: { age_band: age, region } };
}

export interface SampleOptions {
  seed?: number;
  /** Override partner display names (e.g. to test escaping). */
  partnerNames?: string[];
  rounds?: number;
}

export function sampleReportInput(options: SampleOptions = {}): ReportInput {
  const seed = options.seed ?? 42;
  const rounds = options.rounds ?? 12;
  const names = options.partnerNames ?? ['Northwind Retail', 'Contoso Telecom', 'Fabrikam Insurance'];
  const partners: PartnerSpec[] = [
    { name: names[0], rows: 4000, shift: 0.3, maxEpsilon: 3, finalEpsilon: 2.41 },
    { name: names[1], rows: 3000, shift: -0.2, maxEpsilon: 3, finalEpsilon: 1.87 },
    { name: names[2], rows: 2000, shift: 0.5, maxEpsilon: 2, finalEpsilon: 1.96 },
  ];
  const layout = histogramLayout({ age_band: AGE, region: REGION }, 1000);

  // Signal strength grows over rounds as the federated model learns.
  const evalAt = (round: number) => {
    const signal = 1.3 * (1 - Math.exp(-round / 3.5)) + 0.05;
    const vectors = partners.map((p, k) => {
      const d = scorePartner(createRng(deriveSeed(seed, 'holdout', k)), p, signal);
      return buildEvalHistograms(d.scores, d.labels, d.segments, layout);
    });
    return metricsFromHistograms(sumHistograms(vectors), layout);
  };
  const roundMetrics = [];
  for (let r = 1; r <= rounds; r++) {
    const m = evalAt(r);
    roundMetrics.push({ round: r, auc: m.auc, logLoss: m.logLoss });
  }
  const evaluation = evalAt(rounds);

  const rng = createRng(deriveSeed(seed, 'consent'));
  return {
    differentiallyPrivate: true,
    job: {
      jobId: 'job-2024-06-churn-q3',
      dataset: 'synthetic retail churn (sample data)',
      modelSpec: { kind: 'mlp', hidden: [32, 16], activation: 'relu' },
      rounds,
      strategy: 'FedAdam (server lr 0.01)',
      createdAt: '2024-06-11T08:00:00Z',
      finishedAt: '2024-06-11T09:42:17Z',
      owner: 'Marketing Analytics',
    },
    partners: partners.map((p, k) => ({
      name: p.name,
      keyId: `ed25519:${deriveSeed(seed, 'key', k).toString(16).padStart(8, '0')}${deriveSeed(seed, 'key2', k).toString(16).padStart(8, '0')}`,
      rowsUsed: p.rows * 4,
      rowsExcludedConsent: Math.round(p.rows * (0.02 + 0.03 * rng.next())),
      rowsExcludedWithdrawn: Math.round(p.rows * 0.004 * (1 + rng.next())),
    })),
    privacy: partners.map((p) => ({
      partner: p.name,
      delta: 1e-5,
      maxEpsilon: p.maxEpsilon,
      epsilonByRound: Array.from({ length: rounds }, (_, i) => ({
        round: i + 1,
        epsilon: p.finalEpsilon * Math.sqrt((i + 1) / rounds),
      })),
      noiseMultiplier: 1.1,
      clipNorm: 1,
      accountant: 'RDP',
    })),
    roundMetrics,
    evaluation,
    encryption: { scheme: 'ckks', polyModulusDegree: 8192, coeffModulusBits: [60, 40, 40, 60], scaleBits: 40, bytesPerParam: 40, securityLevel: 128 },
    audit: {
      ok: true,
      findings: [],
      summary: { entries: 3 + rounds * 2 + 2, signatures: 'all valid', 'hash chain': 'intact', 'ε recomputed': 'matches' },
    },
    modelCard: {
      intendedUse: 'Rank existing customers by churn risk so that retention offers can be targeted at the top deciles.',
      outOfScope: ['Credit, insurance pricing or employment decisions', 'Scoring people who are not existing customers'],
      target: 'churned within 90 days',
      features: ['tenure_months', 'monthly_spend', 'support_contacts_90d', 'channel', 'plan_type', 'days_since_last_purchase'],
      trainingData: 'Each partner trained only on rows with marketing consent; rows with withdrawn consent were removed before training.',
      limitations: ['Trained on 2023–2024 behaviour; re-evaluate after pricing changes.'],
      ethicalConsiderations: ['Age band is used only for fairness evaluation, never as a model input.'],
      version: '1.0.0',
    },
    generatedAt: '2024-06-11T09:45:00Z',
  };
}
