/**
 * Parameters of a vertical SecureBoost job (Cheng et al., arXiv 1901.08755): one label holder with the
 * label and some feature columns, one or more feature holders with other columns of the same
 * (PSI-aligned) customers. One zod schema is validation, type and documentation.
 *
 * The tree parameters mean what they mean in the horizontal GBDT (src/trees/params.ts), and without
 * label DP the trees are the ones the pooled histogram GBDT grows on the same bins.
 */
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';
import { sha256Canonical } from '../../privacy/ledger/canonical.ts';
import { keyIdSchema } from '../../privacy/ledger/entries.ts';
import { verticalHeParamsSchema } from '../he/params.ts';

/** What the label holder learns about a feature holder's column: its kind and bin count, never its name or cuts. */
/** Share of the aligned rows every party holds out for scoring, unless the job says otherwise. */
export const DEFAULT_TEST_FRACTION = 0.25;

export const columnShapeSchema = z.strictObject({
  kind: z.enum(['numeric', 'binary', 'categorical']),
  bins: z.number().int().min(2).max(64),
});
export type ColumnShape = z.infer<typeof columnShapeSchema>;

export const labelDpSchema = z.strictObject({
  /** ε of the label holder's labels for the whole job (every split and every leaf). */
  epsilon: z.number().positive().finite(),
  delta: z.number().gt(0).lt(1).default(1e-5),
  /** Share of the RDP budget (precision 1/σ²) spent on leaf values; the rest on split histograms. */
  leafShare: z.number().gt(0).lt(1).default(0.5),
});
export type LabelDp = z.infer<typeof labelDpSchema>;

export const verticalPartySchema = z.discriminatedUnion('role', [
  z.strictObject({
    role: z.literal('label'),
    keyId: keyIdSchema,
    schemaHash: z.string().regex(/^[0-9a-f]{64}$/),
    /** How many feature columns the label holder splits on (fixes the histogram sensitivity √columns). */
    columnCount: z.number().int().min(1).max(512),
  }),
  z.strictObject({
    role: z.literal('features'),
    keyId: keyIdSchema,
    schemaHash: z.string().regex(/^[0-9a-f]{64}$/),
    /** The party's feature columns in its schema order (the label holder's only view of them). */
    columns: z.array(columnShapeSchema).min(1).max(512),
  }),
]);
export type VerticalParty = z.infer<typeof verticalPartySchema>;

export const secureBoostParamsSchema = z.strictObject({
  /** Label holder first, then the feature holders; candidate splits are scanned in this order. */
  parties: z.array(verticalPartySchema).min(2).max(8),
  /** The PSI job whose common order aligns the parties' rows, and the digest every party must hold. */
  alignment: z.strictObject({ psiJobId: z.string().min(1), orderDigest: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().min(2) }),
  trees: z.number().int().min(1).max(500).default(20),
  depth: z.number().int().min(1).max(8).default(3),
  learningRate: z.number().gt(0).max(1).default(0.3),
  lambda: z.number().min(0).finite().default(1),
  minChildWeight: z.number().min(0).finite().default(1),
  minSplitGain: z.number().min(0).finite().default(0),
  maxDeltaStep: z.number().min(0).finite().default(0),
  baseScore: z.number().gt(0).lt(1).default(0.5),
  /** Bins of every numeric column (each party bins its own columns; cuts never leave it). */
  bins: z.number().int().min(2).max(64).default(32),
  /** Cuts of numeric columns: equal widths of the schema's declared range, or the party's own exact quantiles (local, never sent). */
  edges: z.enum(['schema', 'quantiles']).default('quantiles'),
  /** Hold-out share of the aligned rows, drawn from the seed (the same rows at every party). */
  testFraction: z.number().min(0).lt(1).default(DEFAULT_TEST_FRACTION),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
  labelDp: labelDpSchema.nullable().default(null),
  he: verticalHeParamsSchema.default(verticalHeParamsSchema.parse({})),
});

export type SecureBoostParams = z.output<typeof secureBoostParamsSchema>;
export type SecureBoostParamsInput = z.input<typeof secureBoostParamsSchema>;

export function parseSecureBoostParams(input: unknown): SecureBoostParams {
  const r = secureBoostParamsSchema.safeParse(input);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new FedmarkError('VERTICAL_BAD_PARAMS', `vertical SecureBoost parameters:\n  ${problems.join('\n  ')}`);
  }
  const p = r.data;
  const bad = (m: string) => new FedmarkError('VERTICAL_BAD_PARAMS', `vertical SecureBoost parameters: ${m}`);
  if (p.parties[0].role !== 'label') throw bad('the first party must be the label holder');
  if (p.parties.slice(1).some((x) => x.role !== 'features')) throw bad('exactly one label holder, the other parties are feature holders');
  if (new Set(p.parties.map((x) => x.keyId)).size !== p.parties.length) throw bad('parties must have distinct keys');
  for (const [k, x] of p.parties.entries()) {
    if (x.role !== 'features') continue;
    x.columns.forEach((c, j) => {
      if (c.kind === 'binary' && c.bins !== 2) throw bad(`party ${k} column ${j}: a binary column has 2 bins`);
      if (c.kind === 'numeric' && c.bins !== p.bins) throw bad(`party ${k} column ${j}: numeric columns have the job's ${p.bins} bins`);
    });
  }
  return p;
}

/** Feature columns of all parties: the histogram release's sensitivity is √ of it. */
export function totalColumns(p: Pick<SecureBoostParams, 'parties'>): number {
  return p.parties.reduce((a, x) => a + (x.role === 'label' ? x.columnCount : x.columns.length), 0);
}

/** Widest column of any party (it fixes the rows per gradient ciphertext). */
export function maxColumnBins(p: SecureBoostParams, labelHolderBins: readonly number[]): number {
  let m = Math.max(2, ...labelHolderBins);
  for (const x of p.parties) if (x.role === 'features') for (const c of x.columns) m = Math.max(m, c.bins);
  return m;
}

/** Hash of the parameters every message of the job is bound to (a party running others is refused). */
export function specHashOf(params: SecureBoostParams): string {
  return sha256Canonical({ protocol: 'fedmark-secureboost-1', params });
}
