import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FedmarkError } from '../errors.ts';
import { hashParameters } from '../util/hash.ts';
import { assertParameterLength, parameterLayout } from './params.ts';
import { parseModelSpec, type ModelSpec } from './spec.ts';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
/** Exact float64 copy of the flat parameter vector (tfjs stores float32 only). */
export const PARAMS_F64_BIN = 'params.f64.bin';
const FORMAT = 'fedmark-model-v1';

interface FedmarkModelMetadata {
  format: typeof FORMAT;
  spec: ModelSpec;
  d: number;
  paramsFile: string;
  paramsSha256: string;
  metadata: Record<string, unknown>;
}

export interface LoadedModel {
  spec: ModelSpec;
  d: number;
  params: Float64Array;
  metadata: Record<string, unknown>;
}

/** A tfjs-layers Sequential (Dense stack, sigmoid output) carrying the given parameters. */
export function toLayersModel(spec: ModelSpec, d: number, params: Float64Array): tfl.Sequential {
  const layout = assertParameterLength(spec, d, params);
  const last = layout.layers.length - 1;
  const model = tfl.sequential();
  layout.layers.forEach((layer, l) => {
    model.add(
      tfl.layers.dense({
        units: layer.outDim,
        activation: l === last ? 'sigmoid' : (layout.hiddenActivation ?? 'linear'),
        useBias: true,
        kernelInitializer: 'zeros',
        ...(l === 0 ? { inputShape: [d] } : {}),
      }),
    );
  });
  const p32 = Float32Array.from(params);
  // setWeights keeps its own reference to each value, so the tidy may dispose ours.
  tf.tidy(() => {
    const weights: tf.Tensor[] = [];
    for (const layer of layout.layers) {
      weights.push(
        tf.tensor2d(p32.slice(layer.kernelOffset, layer.kernelOffset + layer.inDim * layer.outDim), [layer.inDim, layer.outDim]),
        tf.tensor1d(p32.slice(layer.biasOffset, layer.biasOffset + layer.outDim)),
      );
    }
    model.setWeights(weights);
  });
  return model;
}

function toArrayBuffer(data: tf.io.WeightData): ArrayBuffer {
  return Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data;
}

function f64ToBytes(params: Float64Array): Uint8Array {
  const out = new Uint8Array(params.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < params.length; i++) view.setFloat64(i * 8, params[i], true);
  return out;
}

function bytesToF64(bytes: Uint8Array): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(bytes.byteLength / 8);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
  return out;
}

async function writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/**
 * A tfjs IOHandler over a directory holding a standard `model.json` + `weights.bin` (the layout
 * tfjs-node's `file://` handler writes), for Node without tfjs-node. Usable with
 * `model.save(fileIOHandler(dir))` and `tfl.loadLayersModel(fileIOHandler(dir))`.
 */
export function fileIOHandler(dir: string): Required<Pick<tf.io.IOHandler, 'save' | 'load'>> {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new FedmarkError('UNSUPPORTED_MODEL', 'binary (GraphDef) model topologies cannot be saved by fedmark');
      }
      await mkdir(dir, { recursive: true });
      const weightData = artifacts.weightData ? toArrayBuffer(artifacts.weightData) : new ArrayBuffer(0);
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.userDefinedMetadata ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
        ...(artifacts.trainingConfig ? { trainingConfig: artifacts.trainingConfig } : {}),
      };
      await writeAtomic(join(dir, WEIGHTS_BIN), new Uint8Array(weightData));
      await writeAtomic(join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const json = await readModelJson(dir);
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const bytes = await readFile(join(dir, p)).catch(() => {
              throw new FedmarkError('MODEL_NOT_FOUND', `weights file ${join(dir, p)} named in model.json cannot be read`);
            });
            buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
          }
        }
        return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}

async function readModelJson(dir: string): Promise<tf.io.ModelJSON> {
  const path = join(dir, MODEL_JSON);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new FedmarkError('MODEL_NOT_FOUND', `no model at ${path}`);
  }
  try {
    return JSON.parse(text) as tf.io.ModelJSON;
  } catch (err) {
    throw new FedmarkError('MODEL_CORRUPT', `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Saves the model as a standard tfjs LayersModel directory (model.json + weights.bin, float32) plus
 * params.f64.bin, the exact float64 parameters: tfjs cannot hold float64, and a saved global model
 * must reload with the same hash the partners agreed on.
 */
export async function saveModel(dir: string, spec: ModelSpec, d: number, params: Float64Array, metadata: Record<string, unknown> = {}): Promise<void> {
  const model = toLayersModel(spec, d, params);
  try {
    await mkdir(dir, { recursive: true });
    await writeAtomic(join(dir, PARAMS_F64_BIN), f64ToBytes(params));
    const fedmark: FedmarkModelMetadata = {
      format: FORMAT,
      spec,
      d,
      paramsFile: PARAMS_F64_BIN,
      paramsSha256: hashParameters(params),
      metadata,
    };
    // JSON round-trip: tfjs requires plain JSON metadata, and this rejects non-serialisable values early.
    model.setUserDefinedMetadata({ fedmark: JSON.parse(JSON.stringify(fedmark)) as {} });
    await model.save(fileIOHandler(dir));
  } finally {
    model.dispose();
  }
}

interface TopologyLayer {
  class_name: string;
  config: { units?: number; activation?: string; use_bias?: boolean; batch_input_shape?: (number | null)[] };
}

/** Recovers spec and d from a plain Dense-stack topology (models saved by other tfjs code). */
function inferFromTopology(json: tf.io.ModelJSON): { spec: ModelSpec; d: number } {
  const topo = json.modelTopology as { config?: { layers?: TopologyLayer[] } | TopologyLayer[] } | undefined;
  const cfg = topo?.config;
  const layers = (Array.isArray(cfg) ? cfg : (cfg?.layers ?? [])).filter((l) => l.class_name !== 'InputLayer');
  const bad = (why: string): never => {
    throw new FedmarkError('UNSUPPORTED_MODEL', `model.json is not a fedmark model: ${why}`);
  };
  if (layers.length === 0) bad('no layers');
  for (const l of layers) if (l.class_name !== 'Dense' || l.config.use_bias === false) bad(`layer ${l.class_name} is not a Dense layer with bias`);
  const shape = layers[0].config.batch_input_shape;
  const d = shape?.[1];
  if (typeof d !== 'number') bad('first layer has no input shape');
  const last = layers[layers.length - 1];
  if (last.config.units !== 1 || last.config.activation !== 'sigmoid') bad('output layer must be Dense(1, sigmoid)');
  if (layers.length === 1) return { spec: { kind: 'logistic' }, d: d as number };
  const hidden = layers.slice(0, -1);
  const act = hidden[0].config.activation;
  if (act !== 'relu' && act !== 'tanh') bad(`hidden activation ${String(act)} is not relu or tanh`);
  if (hidden.some((l) => l.config.activation !== act)) bad('hidden layers use different activations');
  return {
    spec: parseModelSpec({ kind: 'mlp', hidden: hidden.map((l) => l.config.units), activation: act }),
    d: d as number,
  };
}

/**
 * Loads a directory written by saveModel (or any Dense-stack tfjs LayersModel with a sigmoid
 * output). Parameters come from params.f64.bin when present — checked against its sha256 and against
 * the float32 weights — else from weights.bin.
 */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const json = await readModelJson(dir);
  const fm = json.userDefinedMetadata?.fedmark as FedmarkModelMetadata | undefined;
  let spec: ModelSpec;
  let d: number;
  let metadata: Record<string, unknown> = {};
  if (fm && fm.format === FORMAT) {
    spec = parseModelSpec(fm.spec);
    d = fm.d;
    metadata = fm.metadata ?? {};
  } else {
    ({ spec, d } = inferFromTopology(json));
  }
  const layout = parameterLayout(spec, d);

  const artifacts = await fileIOHandler(dir).load();
  const weightData = artifacts.weightData ? toArrayBuffer(artifacts.weightData) : new ArrayBuffer(0);
  const named = tf.io.decodeWeights(weightData, artifacts.weightSpecs ?? []);
  const values = Object.values(named);
  const fromF32 = new Float64Array(layout.size);
  try {
    if (values.length !== layout.layers.length * 2) {
      throw new FedmarkError('MODEL_CORRUPT', `model.json lists ${values.length} weight tensors, expected ${layout.layers.length * 2}`);
    }
    // Weight specs are in layer order: kernel then bias, as the layout stores them.
    let offset = 0;
    for (const t of values) {
      const data = t.dataSync();
      fromF32.set(data, offset);
      offset += data.length;
    }
    if (offset !== layout.size) {
      throw new FedmarkError('MODEL_CORRUPT', `weights hold ${offset} values, the ${spec.kind} model needs ${layout.size}`);
    }
  } finally {
    for (const t of values) t.dispose();
  }

  if (!fm || fm.format !== FORMAT) return { spec, d, params: fromF32, metadata };
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, fm.paramsFile));
  } catch {
    return { spec, d, params: fromF32, metadata };
  }
  if (bytes.byteLength !== layout.size * 8) {
    throw new FedmarkError('MODEL_CORRUPT', `${fm.paramsFile} has ${bytes.byteLength} bytes, expected ${layout.size * 8}`);
  }
  const params = bytesToF64(bytes);
  if (hashParameters(params) !== fm.paramsSha256) {
    throw new FedmarkError('MODEL_CORRUPT', `${fm.paramsFile} does not match the sha256 recorded in model.json`);
  }
  for (let i = 0; i < params.length; i++) {
    if (Math.fround(params[i]) !== fromF32[i]) {
      throw new FedmarkError('MODEL_CORRUPT', `${WEIGHTS_BIN} and ${fm.paramsFile} disagree at parameter ${i}`);
    }
  }
  return { spec, d, params, metadata };
}
