/**
 * A feature holder ("passive party") of vertical SecureBoost, as a step-driven state machine with no
 * I/O. It holds its own columns, bins them with its own cuts and answers the label holder: encrypted
 * per-bin sums of the nodes it is asked for (it cannot read the gradients), the left-instance set of
 * each split it won, and at scoring time, for each of its splits, which of the requested rows go left.
 * Its values, its cuts and its thresholds never leave it; it learns the node membership of the
 * training rows (the known leakage of SecureBoost, docs/VERTICAL.md) and which splits it won.
 */
import { FedmarkError } from '../../errors.ts';
import type { BinnedMatrix, BinEdges } from '../../trees/edges.ts';
import { goesRight } from '../../trees/heap-tree.ts';
import { groupBins } from '../../trees/layout.ts';
import type { VerticalHeContext } from '../he/context.ts';
import { FeatureHolderEvaluator, type LoadedGradients } from '../he/feature-holder.ts';
import { noisePlan } from '../he/params.ts';
import type { Sections } from './active.ts';
import { binRows, columnShapes, partyEdges } from './layout.ts';
import type { FeatureModel } from './model.ts';
import { featureAnswers } from './scoring.ts';
import type { SecureBoostParams } from './params.ts';
import { NO_NODE, alignedSplit, bitmapBytes, readI32, readJson, readU16, setBit, type DataSplit, type PartyRows } from './rows.ts';
import type { Step } from './schedule.ts';

export interface PassiveInit {
  params: SecureBoostParams;
  /** This party's index in params.parties (1 …). */
  party: number;
  rows: PartyRows;
  he: VerticalHeContext;
}

interface HistMeta {
  tree: number;
  level: number;
  rows: number;
  trainRows: number;
}

export class PassiveParty {
  readonly split: DataSplit;
  private readonly params: SecureBoostParams;
  private readonly rows: PartyRows;
  private readonly edges: BinEdges;
  private readonly binned: BinnedMatrix;
  private readonly bins: number[];
  private readonly he: VerticalHeContext;
  private evaluator: FeatureHolderEvaluator | null = null;
  private gradients: LoadedGradients | null = null;
  private meta: HistMeta | null = null;
  private floodBits = 0;
  private membership: Uint16Array | null = null;
  private compute: Int32Array = new Int32Array(0);
  private splits: { slot: number; group: number; cut: number }[] = [];
  private requestedEntries = 0;
  private scoreRows: Int32Array | null = null;
  private readonly nodes: FeatureModel['nodes'] = [];
  /** CPU milliseconds spent in HE work (what a feature holder pays per tree). */
  heMs = 0;

  constructor(init: PassiveInit) {
    const p = (this.params = init.params);
    const me = p.parties[init.party];
    if (!me || me.role !== 'features') throw new FedmarkError('VERTICAL_NOT_A_PARTY', `party ${init.party} is not a feature holder of the job`);
    const shapes = columnShapes(init.rows.layout, p.bins);
    if (JSON.stringify(shapes) !== JSON.stringify(me.columns)) {
      throw new FedmarkError(
        'VERTICAL_SHAPE_MISMATCH',
        `the job describes this party's columns as ${JSON.stringify(me.columns)}, its schema gives ${JSON.stringify(shapes)}`,
      );
    }
    this.rows = init.rows;
    this.he = init.he;
    this.split = alignedSplit(init.rows.n, p.testFraction, p.seed);
    this.edges = partyEdges(p, init.rows.layout, init.rows.X, this.split.train);
    this.binned = binRows(p, init.rows.layout, this.edges, init.rows.X, init.rows.n);
    this.bins = init.rows.layout.groups.map((g) => groupBins(g, p.bins));
  }

  produce(step: Step): Sections {
    switch (step.kind) {
      case 'hist-resp':
        return this.histograms(step);
      case 'split-resp':
        return this.leftSets();
      case 'score-resp':
        return this.scores(step);
      default:
        throw new FedmarkError('VERTICAL_BAD_ROUND', `a feature holder sends nothing in a ${step.kind} round`);
    }
  }

  consume(step: Step, sections: Map<string, Uint8Array>): void {
    const what = `${step.kind} of round ${step.round}`;
    switch (step.kind) {
      case 'hist-req':
        return this.takeHistRequest(step, sections, what);
      case 'split-req':
        return this.takeSplits(step, sections, what);
      case 'score-req':
        return this.takeScoreRequest(sections, what);
      default:
        // A request this party has no answer for — e.g. the label holder asking for a threshold — is refused.
        throw new FedmarkError('VERTICAL_UNEXPECTED_MESSAGE', `${what}: a feature holder answers no such request`);
    }
  }

  private takeHistRequest(step: Step, sections: Map<string, Uint8Array>, what: string): void {
    const meta = readJson<HistMeta>(sections, 'meta', what);
    const n = this.split.train.length;
    const N = this.he.n;
    const maxBins = Math.max(...this.bins);
    if (meta.tree !== step.tree || meta.level !== step.level)
      throw new FedmarkError(
        'VERTICAL_UNEXPECTED_MESSAGE',
        `${what}: for tree ${meta.tree} level ${meta.level}, expected tree ${step.tree} level ${step.level}`,
      );
    if (meta.trainRows !== n) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: ${meta.trainRows} training rows, this party aligned ${n}`);
    if (!(Number.isInteger(meta.rows) && meta.rows >= 1 && 2 * meta.rows * maxBins <= N))
      throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: ${meta.rows} rows per ciphertext do not fit this party's ${maxBins} bins`);
    // The flooding is this party's protection: it computes it itself, never takes it from the label holder.
    this.floodBits = noisePlan({ n: N, rows: meta.rows, minFloodBits: this.params.he.minFloodBits }, this.he, n).floodBits;
    const pk = sections.get('public-key');
    if (step.tree === 0 && step.level === 0) {
      if (!pk) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: the first request must carry the label holder's public key`);
      this.evaluator?.dispose();
      this.evaluator = new FeatureHolderEvaluator(this.he, pk);
    } else if (pk) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: the public key may not change during the job`);
    if (!this.evaluator) throw new FedmarkError('VERTICAL_BAD_ROUND', `${what}: no public key yet`);
    const grads = sections.get('gradients');
    if (step.level === 0) {
      if (!grads) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: a tree's first request carries its gradients`);
      this.gradients?.dispose();
      const t0 = process.cpuUsage();
      this.gradients = this.evaluator.loadGradients(grads, Math.ceil(n / meta.rows), meta.rows);
      this.heMs += cpuMs(t0);
    } else if (grads) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: gradients only come with a tree's first level`);
    const width = 2 ** step.level!;
    const membership = readU16(sections, 'membership', what, n);
    for (let i = 0; i < n; i++) {
      if (membership[i] !== NO_NODE && membership[i] >= width)
        throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: row ${i} is in node slot ${membership[i]}, the level has ${width}`);
    }
    const compute = readI32(sections, 'compute', what);
    for (let k = 0; k < compute.length; k++) {
      if (!(compute[k] >= 0 && compute[k] < width) || (k > 0 && compute[k] <= compute[k - 1]))
        throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: node slots to sum must be distinct, ascending and inside the level`);
    }
    this.meta = meta;
    this.membership = membership;
    this.compute = compute;
  }

  private histograms(step: Step): Sections {
    if (!this.meta || !this.membership || !this.gradients || !this.evaluator || this.meta.tree !== step.tree || this.meta.level !== step.level) {
      throw new FedmarkError('VERTICAL_BAD_ROUND', `hist-resp of round ${step.round}: no request for this level was received`);
    }
    const r = this.meta.rows;
    const n = this.split.train.length;
    const G = this.binned.groups;
    const blocks = this.gradients.blocks.length;
    const packed: Uint8Array[] = [];
    const t0 = process.cpuUsage();
    for (const slot of this.compute) {
      // Per block, whether the node has a row in it (a block without one is skipped).
      const present = new Uint8Array(blocks);
      for (let i = 0; i < n; i++) if (this.membership[i] === slot) present[Math.floor(i / r)] = 1;
      for (let gi = 0; gi < G; gi++) {
        const local = new Int16Array(r);
        packed.push(
          this.evaluator.binSums(this.gradients, this.bins[gi], this.floodBits, (b) => {
            if (!present[b]) return null;
            local.fill(-1);
            for (let j = 0; j < r; j++) {
              const i = b * r + j;
              if (i < n && this.membership![i] === slot) local[j] = this.binned.bins[this.split.train[i] * G + gi];
            }
            return local;
          }),
        );
      }
    }
    this.heMs += cpuMs(t0);
    return [{ name: 'results', bytes: packed.length ? this.evaluator.resultsBlob(packed) : new Uint8Array(0) }];
  }

  private takeSplits(step: Step, sections: Map<string, Uint8Array>, what: string): void {
    if (!this.meta || this.meta.tree !== step.tree || this.meta.level !== step.level)
      throw new FedmarkError('VERTICAL_BAD_ROUND', `${what}: no histograms were sent for this level`);
    const width = 2 ** step.level!;
    const entries = readI32(sections, 'splits', what, 3 * width);
    const layout = this.rows.layout;
    this.splits = [];
    for (let k = 0; k < width; k++) {
      const slot = entries[3 * k];
      if (slot === NO_NODE) continue;
      const group = entries[3 * k + 1];
      const cut = entries[3 * k + 2];
      if (!(slot >= 0 && slot < width) || this.splits.some((s) => s.slot === slot))
        throw new FedmarkError('VERTICAL_BAD_SPLIT', `${what}: node slot ${slot} is not a distinct node of the level`);
      if (!(group >= 0 && group < layout.groups.length))
        throw new FedmarkError('VERTICAL_BAD_SPLIT', `${what}: column ${group} is not one of this party's ${layout.groups.length} columns`);
      const g = layout.groups[group];
      const maxCut = g.kind === 'categorical' ? this.bins[group] - 1 : this.bins[group] - 2;
      if (!(Number.isInteger(cut) && cut >= 0 && cut <= maxCut))
        throw new FedmarkError('VERTICAL_BAD_SPLIT', `${what}: bin ${cut} is not a cut of column ${group}`);
      this.splits.push({ slot, group, cut });
      const node = width - 1 + slot;
      const threshold = g.kind === 'categorical' ? cut : this.edges.cuts[group][cut];
      this.nodes.push({ tree: step.tree!, node, group, cut, threshold });
    }
    this.requestedEntries = width;
  }

  private leftSets(): Sections {
    const n = this.split.train.length;
    const stride = bitmapBytes(n);
    const bits = new Uint8Array(this.requestedEntries * stride);
    const G = this.binned.groups;
    const layout = this.rows.layout;
    this.splits.forEach((s, k) => {
      for (let i = 0; i < n; i++) {
        if (this.membership![i] !== s.slot) continue;
        const bin = this.binned.bins[this.split.train[i] * G + s.group];
        if (!goesRight(layout, s.group, s.cut, bin)) setBit(bits, k * stride, i);
      }
    });
    this.splits = [];
    return [{ name: 'left', bytes: bits }];
  }

  private takeScoreRequest(sections: Map<string, Uint8Array>, what: string): void {
    const rows = readI32(sections, 'rows', what);
    for (const r of rows) if (!(r >= 0 && r < this.rows.n)) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${what}: row ${r} is not an aligned row`);
    this.scoreRows = rows;
  }

  /** For every split this party owns (tree, node order), which requested rows go left: query-independent. */
  private scores(step: Step): Sections {
    const rows = this.scoreRows;
    if (!rows) throw new FedmarkError('VERTICAL_BAD_ROUND', `score-resp of round ${step.round}: no rows were requested`);
    return featureAnswers(this.model(), this.rows.layout, this.rows.X, rows);
  }

  /** This party's part of the model (its splits and thresholds: keep it local). */
  model(): FeatureModel {
    return { format: 'fedmark-vertical-features/1', nodes: this.nodes.map((x) => ({ ...x })) };
  }

  dispose(): void {
    this.gradients?.dispose();
    this.evaluator?.dispose();
    this.gradients = null;
    this.evaluator = null;
  }
}

function cpuMs(t0: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(t0);
  return (u.user + u.system) / 1000;
}
