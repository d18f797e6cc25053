/**
 * The label holder ("active party") of vertical SecureBoost, as a step-driven state machine with no
 * I/O: `produce(step)` returns the sections to send to each feature holder, `consume(step, party,
 * sections)` takes one feature holder's answer. It holds the labels, its own columns and cuts, its own
 * BFV key, and the tree structure with the leaf values; it learns the per-bin sums of the feature
 * holders' columns (decrypted) and the left-instance sets of the splits they win, never their values
 * or cuts. The split search and leaf values are src/trees' (bestSplit, leafWeight), over a joint view
 * of all parties' columns in party order, so without label DP the trees are the pooled GBDT's.
 */
import { FedmarkError } from '../../errors.ts';
import { addGaussianNoiseInPlace } from '../../privacy/noise.ts';
import { LEAF, OPEN, PENDING, SPLIT, emptyTree, finishTree, goesRight, levelSlot } from '../../trees/heap-tree.ts';
import { binLayout, type BinLayout } from '../../trees/layout.ts';
import { logit } from '../../trees/local.ts';
import { bestSplit, leafWeight } from '../../trees/split.ts';
import type { BinnedMatrix } from '../../trees/edges.ts';
import type { VerticalHeContext } from '../he/context.ts';
import { LabelHolderKeys } from '../he/label-holder.ts';
import { noisePlan, rowsPerCiphertext, type NoisePlan } from '../he/params.ts';
import { labelDpPlan, type LabelDpPlan } from './dp.ts';
import { emptyHist, leftSums, ownHistograms, placeForeign, subtractForeign, type NodeHist } from './histograms.ts';
import { binRows, jointView, partyEdges, type JointView } from './layout.ts';
import { totalColumns, type ColumnShape, type SecureBoostParams } from './params.ts';
import { NO_NODE, bitmapBytes, getBit, i32Bytes, jsonBytes, readBytes, u16Bytes, alignedSplit, type DataSplit, type PartyRows } from './rows.ts';
import type { Step } from './schedule.ts';
import type { LabelModel, VerticalTree } from './model.ts';
import { labelMargins, ownedSplits, readAnswers, type Answers } from './scoring.ts';

export type Sections = { name: string; bytes: Uint8Array }[];

export interface ActiveInit {
  params: SecureBoostParams;
  rows: PartyRows & { y: Float32Array };
  he: VerticalHeContext;
}

interface CurrentTree {
  tree: VerticalTree;
  nodeOf: Int32Array;
  gq: Float64Array;
  hq: Float64Array;
  /** The level's open nodes and their histograms (fixed-point integers). */
  level: Map<number, NodeHist>;
  /** The previous level's, for right = parent − left. */
  parent: Map<number, NodeHist>;
  /** Per feature holder: the nodes it won at this level, in the order of its split request. */
  won: Map<number, number[]>;
  answered: Set<number>;
}

export class ActiveParty {
  readonly params: SecureBoostParams;
  readonly split: DataSplit;
  readonly view: JointView;
  readonly dp: LabelDpPlan | null;
  readonly noise: NoisePlan;
  private readonly rows: ActiveInit['rows'];
  private readonly binned: BinnedMatrix;
  private readonly bins: BinLayout;
  private readonly keys: LabelHolderKeys;
  private readonly shapes: ColumnShape[][];
  private readonly margin: Float64Array;
  private readonly trees: VerticalTree[] = [];
  private cur: CurrentTree | null = null;
  private publicKeySent = false;
  private scores: { rows: Int32Array; left: Answers; answered: Set<number> } | null = null;
  private testMargins: Float64Array | null = null;

  constructor(init: ActiveInit) {
    const p = (this.params = init.params);
    this.rows = init.rows;
    const own = init.rows.layout;
    const lh = p.parties[0];
    if (lh.role !== 'label' || lh.columnCount !== own.groups.length) {
      throw new FedmarkError(
        'VERTICAL_SHAPE_MISMATCH',
        `the job declares ${lh.role === 'label' ? lh.columnCount : '?'} label-holder columns, this party has ${own.groups.length}`,
      );
    }
    if (init.rows.y.length < init.rows.n) throw new FedmarkError('VERTICAL_BAD_DATA', 'the label holder needs a label for every aligned row');
    this.split = alignedSplit(init.rows.n, p.testFraction, p.seed);
    const edges = partyEdges(p, own, init.rows.X, this.split.train);
    this.binned = binRows(p, own, edges, init.rows.X, init.rows.n);
    this.shapes = p.parties.slice(1).map((x) => (x.role === 'features' ? x.columns : []));
    this.view = jointView(own, edges, this.shapes);
    this.bins = binLayout(this.view.layout, p.bins);
    const maxBins = Math.max(...Array.from(this.bins.sizes));
    this.noise = noisePlan({ n: init.he.n, rows: rowsPerCiphertext(init.he.n, maxBins), minFloodBits: p.he.minFloodBits }, init.he, this.split.train.length);
    this.dp = labelDpPlan(p, totalColumns(p));
    this.keys = new LabelHolderKeys(init.he);
    this.margin = new Float64Array(this.split.train.length).fill(logit(p.baseScore));
  }

  get trainRows(): number {
    return this.split.train.length;
  }

  /** The sections for each feature holder (party index 1 …) in a round the label holder sends. */
  produce(step: Step): Map<number, Sections> {
    switch (step.kind) {
      case 'hist-req':
        return this.histRequest(step.tree!, step.level!);
      case 'split-req':
        return this.splitRequest(step.level!);
      case 'score-req':
        return this.scoreRequest();
      default:
        throw new FedmarkError('VERTICAL_BAD_ROUND', `the label holder sends nothing in a ${step.kind} round`);
    }
  }

  consume(step: Step, party: number, sections: Map<string, Uint8Array>): void {
    const who = `party ${party} (${step.kind}, round ${step.round})`;
    if (!(party >= 1 && party < this.params.parties.length)) throw new FedmarkError('VERTICAL_UNKNOWN_SENDER', `${who}: not a feature holder of the job`);
    switch (step.kind) {
      case 'hist-resp':
        return this.takeHistograms(party, sections, who);
      case 'split-resp':
        return this.takeLeftSets(party, step.level!, sections, who);
      case 'score-resp':
        return this.takeScores(party, sections, who);
      default:
        throw new FedmarkError('VERTICAL_BAD_ROUND', `the label holder receives nothing in a ${step.kind} round`);
    }
  }

  private parties(): number[] {
    return this.params.parties.slice(1).map((_, k) => k + 1);
  }

  /** Ends the current tree: noisy leaves (with label DP), sums and gains, margins of the training rows. */
  private finishCurrent(): void {
    const c = this.cur;
    if (!c) return;
    const t = c.tree;
    if (this.dp) {
      const leaves = [...t.kind.keys()].filter((i) => t.kind[i] === PENDING || t.kind[i] === OPEN);
      const G = new Float64Array(leaves.length);
      const H = new Float64Array(leaves.length);
      const index = new Map(leaves.map((i, k) => [i, k]));
      for (let i = 0; i < c.nodeOf.length; i++) {
        const k = index.get(c.nodeOf[i]);
        if (k === undefined) continue;
        G[k] += c.gq[i];
        H[k] += c.hq[i];
      }
      const scale = 2 ** this.noise.scaleBits;
      for (let k = 0; k < leaves.length; k++) {
        G[k] /= scale;
        H[k] /= scale;
      }
      addGaussianNoiseInPlace(G, this.dp.leaf.std);
      leaves.forEach((i, k) => {
        t.G[i] = G[k];
        t.H[i] = H[k];
        t.kind[i] = LEAF;
        t.value[i] = H[k] >= this.params.minChildWeight ? leafWeight(G[k], H[k], this.params) : 0;
      });
    }
    const done = finishTree(t, this.params.lambda) as VerticalTree;
    done.owner = t.owner;
    for (let i = 0; i < c.nodeOf.length; i++) this.margin[i] += done.value[c.nodeOf[i]];
    this.trees.push(done);
    this.cur = null;
  }

  private startTree(): CurrentTree {
    const n = this.trainRows;
    const y = this.rows.y;
    const scale = 2 ** this.noise.scaleBits;
    const gq = new Float64Array(n);
    const hq = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-this.margin[i]));
      const g = p - y[this.split.train[i]];
      const h = p * (1 - p);
      gq[i] = Math.round((g < -1 ? -1 : g > 1 ? 1 : g) * scale);
      hq[i] = Math.round((h < 0 ? 0 : h > 0.25 ? 0.25 : h) * scale);
    }
    const tree = emptyTree(this.params.depth) as VerticalTree;
    tree.owner = new Array<number>(tree.kind.length).fill(0);
    tree.kind[0] = OPEN;
    return { tree, nodeOf: new Int32Array(n), gq, hq, level: new Map(), parent: new Map(), won: new Map(), answered: new Set() };
  }

  private histRequest(tree: number, level: number): Map<number, Sections> {
    if (level === 0) {
      this.finishCurrent();
      if (this.trees.length !== tree) throw new FedmarkError('VERTICAL_BAD_ROUND', `tree ${tree} requested after ${this.trees.length} trees`);
      this.cur = this.startTree();
    }
    const c = this.cur!;
    c.parent = c.level;
    c.level = new Map();
    c.answered = new Set();
    const t = c.tree;
    const first = 2 ** level - 1;
    for (let i = first; i < first + 2 ** level; i++) if (t.kind[i] === OPEN) c.level.set(i, emptyHist(this.bins));
    ownHistograms(c.level, c.nodeOf, this.split.train, this.binned, this.view.counts[0], this.bins, c.gq, c.hq);
    const membership = new Uint16Array(this.trainRows).fill(NO_NODE);
    for (let i = 0; i < c.nodeOf.length; i++) if (c.level.has(c.nodeOf[i])) membership[i] = levelSlot(c.nodeOf[i]);
    const compute = Int32Array.from([...c.level.keys()].filter((i) => i === 0 || i % 2 === 1).map(levelSlot));
    const gradients = level === 0 ? this.keys.encryptGradients(c.gq, c.hq, this.noise.rows) : null;
    const publicKey = !this.publicKeySent ? this.keys.publicKeyBytes() : null;
    this.publicKeySent = true;
    const sections: Sections = [
      { name: 'meta', bytes: jsonBytes({ tree, level, rows: this.noise.rows, trainRows: this.trainRows }) },
      { name: 'membership', bytes: u16Bytes(membership) },
      { name: 'compute', bytes: i32Bytes(compute) },
      ...(gradients ? [{ name: 'gradients', bytes: gradients }] : []),
      ...(publicKey ? [{ name: 'public-key', bytes: publicKey }] : []),
    ];
    return new Map(this.parties().map((p) => [p, sections]));
  }

  private takeHistograms(party: number, sections: Map<string, Uint8Array>, who: string): void {
    const c = this.cur;
    if (!c) throw new FedmarkError('VERTICAL_BAD_ROUND', `${who}: no tree is being grown`);
    if (c.answered.has(party)) throw new FedmarkError('VERTICAL_DUPLICATE_MESSAGE', `${who}: already answered this round`);
    const computed = [...c.level.keys()].filter((i) => i === 0 || i % 2 === 1);
    const shapes = this.shapes[party - 1];
    const blob = readBytes(sections, 'results', who);
    if (computed.length === 0) {
      if (blob.length !== 0) throw new FedmarkError('VERTICAL_BAD_MESSAGE', `${who}: results for a level with no node to sum`);
    } else {
      const binsList = computed.flatMap(() => shapes.map((s) => s.bins));
      const sums = this.keys.decryptBinSums(blob, binsList, this.noise.rows);
      computed.forEach((node, a) =>
        shapes.forEach((_, j) => placeForeign(c.level.get(node)!, sums[a * shapes.length + j], this.view, this.bins, party, j, `${who}, node ${node}`)),
      );
    }
    c.answered.add(party);
  }

  /** Picks every open node's split from the (noisy) histograms; tells each feature holder only the splits it won. */
  private splitRequest(level: number): Map<number, Sections> {
    const c = this.cur!;
    if (c.answered.size !== this.params.parties.length - 1)
      throw new FedmarkError('VERTICAL_BAD_ROUND', 'split request before every feature holder returned its sums');
    const t = c.tree;
    const p = this.params;
    const scale = 2 ** this.noise.scaleBits;
    // Right children: foreign columns are parent − left (own columns were summed directly).
    for (const [i, h] of c.level) {
      if (i === 0 || i % 2 === 1) continue;
      subtractForeign(h, c.parent.get((i - 1) >> 1)!, c.level.get(i - 1)!, this.view, this.bins);
    }
    const leafRound = this.dp !== null;
    const lastLevel = level + 1 === p.depth;
    const gradVar = this.dp ? this.dp.histogram.std ** 2 : 0;
    const settle = (i: number, G: number, H: number) => {
      t.G[i] = G;
      t.H[i] = H;
      if (leafRound) t.kind[i] = PENDING;
      else {
        t.kind[i] = LEAF;
        t.value[i] = leafWeight(G, H, p);
      }
    };
    c.won = new Map(this.parties().map((q) => [q, []]));
    for (const [i, h] of c.level) {
      const G = Float64Array.from(h.G, (v) => v / scale);
      const H = Float64Array.from(h.H, (v) => v / scale);
      if (this.dp) addGaussianNoiseInPlace(G, this.dp.histogram.std);
      const choice = bestSplit(this.view.layout, this.bins, this.view.edges, p, G, H, 0, gradVar, 0);
      if (choice === null) {
        let g = 0;
        let hh = 0;
        for (let b = 0; b < this.bins.sizes[0]; b++) {
          g += G[b];
          hh += H[b];
        }
        settle(i, g, hh);
        continue;
      }
      t.kind[i] = SPLIT;
      t.group[i] = choice.group;
      t.cut[i] = choice.cut;
      t.gain[i] = choice.gain;
      const owner = this.ownerOf(choice.group);
      t.owner[i] = owner;
      const l = 2 * i + 1;
      if (lastLevel) {
        settle(l, choice.GL, choice.HL);
        settle(l + 1, choice.GR, choice.HR);
      } else {
        t.kind[l] = OPEN;
        t.kind[l + 1] = OPEN;
      }
      if (owner === 0) this.routeOwn(c, i);
      else c.won.get(owner)!.push(i);
    }
    c.answered = new Set();
    const width = 2 ** level;
    return new Map(
      this.parties().map((q) => {
        const entries = new Int32Array(3 * width).fill(0);
        for (let k = 0; k < width; k++) entries[3 * k] = NO_NODE;
        c.won.get(q)!.forEach((i, k) => {
          entries[3 * k] = levelSlot(i);
          entries[3 * k + 1] = t.group[i] - this.view.offsets[q];
          entries[3 * k + 2] = t.cut[i];
        });
        return [q, [{ name: 'splits', bytes: i32Bytes(entries) }]];
      }),
    );
  }

  private ownerOf(group: number): number {
    let owner = 0;
    this.view.offsets.forEach((o, q) => {
      if (group >= o) owner = q;
    });
    return owner;
  }

  /** Moves the node's rows to its children by the label holder's own column. */
  private routeOwn(c: CurrentTree, node: number): void {
    const t = c.tree;
    const G = this.binned.groups;
    for (let i = 0; i < c.nodeOf.length; i++) {
      if (c.nodeOf[i] !== node) continue;
      const bin = this.binned.bins[this.split.train[i] * G + t.group[node]];
      c.nodeOf[i] = goesRight(this.view.layout, t.group[node], t.cut[node], bin) ? 2 * node + 2 : 2 * node + 1;
    }
  }

  private takeLeftSets(party: number, level: number, sections: Map<string, Uint8Array>, who: string): void {
    const c = this.cur;
    if (!c) throw new FedmarkError('VERTICAL_BAD_ROUND', `${who}: no tree is being grown`);
    if (c.answered.has(party)) throw new FedmarkError('VERTICAL_DUPLICATE_MESSAGE', `${who}: already answered this round`);
    const won = c.won.get(party) ?? [];
    const t = c.tree;
    const n = this.trainRows;
    const stride = bitmapBytes(n);
    const bits = readBytes(sections, 'left', who, 2 ** level * stride);
    won.forEach((node, k) => {
      const at = k * stride;
      const cat = this.view.layout.groups[t.group[node]].kind === 'categorical';
      const want = leftSums(c.level.get(node)!, this.bins, t.group[node], t.cut[node], cat);
      let G = 0;
      let H = 0;
      for (let i = 0; i < n; i++) {
        if (!getBit(bits, at, i)) continue;
        if (c.nodeOf[i] !== node)
          throw new FedmarkError('VERTICAL_LEFT_SET_INCONSISTENT', `${who}: the left set of node ${node} holds row ${i}, which is not in the node`);
        G += c.gq[i];
        H += c.hq[i];
      }
      if (G !== want.G || H !== want.H) {
        throw new FedmarkError('VERTICAL_LEFT_SET_INCONSISTENT', `${who}: the left set of node ${node} does not match the bins the split was chosen on`);
      }
      for (let i = 0; i < n; i++) if (c.nodeOf[i] === node) c.nodeOf[i] = getBit(bits, at, i) ? 2 * node + 1 : 2 * node + 2;
    });
    c.answered.add(party);
  }

  private scoreRequest(): Map<number, Sections> {
    this.finishCurrent();
    const rows = this.split.test;
    this.scores = { rows, left: new Map(), answered: new Set() };
    return new Map(this.parties().map((q) => [q, [{ name: 'rows', bytes: i32Bytes(rows) }]]));
  }

  private takeScores(party: number, sections: Map<string, Uint8Array>, who: string): void {
    const s = this.scores;
    if (!s) throw new FedmarkError('VERTICAL_BAD_ROUND', `${who}: no scoring was requested`);
    if (s.answered.has(party)) throw new FedmarkError('VERTICAL_DUPLICATE_MESSAGE', `${who}: already answered this round`);
    const model = this.model();
    readAnswers(s.left, sections, ownedSplits(model, party), s.rows.length, who);
    s.answered.add(party);
    if (s.answered.size === this.params.parties.length - 1) this.testMargins = labelMargins(model, this.rows.layout, this.rows.X, s.rows, s.left);
  }

  /** Probabilities of the hold-out rows, after the score round. */
  testScores(): { rows: Int32Array; labels: Float32Array; margins: Float64Array } {
    if (!this.testMargins || !this.scores) throw new FedmarkError('VERTICAL_NOT_DONE', 'the hold-out rows have not been scored yet');
    const labels = Float32Array.from(this.scores.rows, (r) => this.rows.y[r]);
    return { rows: this.scores.rows, labels, margins: this.testMargins };
  }

  /** The label holder's part of the model: structure, owners, its own splits, leaf values. */
  model(): LabelModel {
    return {
      format: 'fedmark-vertical-label/1',
      baseScore: this.params.baseScore,
      trees: this.trees.map((t) => ({
        kind: [...t.kind],
        owner: [...t.owner],
        group: t.group.map((g, i) => (t.kind[i] === SPLIT ? g - this.view.offsets[t.owner[i]] : 0)),
        cut: [...t.cut],
        threshold: t.kind.map((k, i) =>
          k === SPLIT && t.owner[i] === 0 && this.view.layout.groups[t.group[i]].kind !== 'categorical' ? this.view.edges.cuts[t.group[i]][t.cut[i]] : 0,
        ),
        value: [...t.value],
      })),
    };
  }

  /** The trees as src/trees grows them, with groups numbered over all parties' columns (for comparisons). */
  heapTrees(): VerticalTree[] {
    return this.trees;
  }

  dispose(): void {
    this.keys.dispose();
  }
}
