/**
 * Dataset schema: a JSON file that declares every column of a partner's CSV, with the bounds and
 * vocabularies that make the encoding data-independent. Every partner in a federation encodes with
 * the same declared constants, so feature vectors line up and nothing is fitted to (or leaks) any
 * partner's data distribution.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { FedmarkError } from '../errors.ts';

/** Name of the one-hot bucket that catches values outside a categorical column's vocabulary. */
export const OTHER_BUCKET = '<other>';

const columnName = z
  .string()
  .min(1, 'column name must not be empty')
  .refine((s) => s === s.trim(), 'column name must not start or end with whitespace');

/** Cell values are matched after trimming, so a declared value with outer whitespace could never match. */
const declaredValue = z
  .string()
  .refine((s) => s === s.trim(), 'declared values are matched against trimmed cells; remove outer whitespace');

const valueList = z.array(declaredValue).min(1, 'declare at least one value');

const common = {
  name: columnName,
  description: z.string().optional(),
};

/** Attributes of typed (feature-capable) columns. */
const typedCommon = {
  ...common,
  role: z.literal('feature').optional(),
  /** Kept per row for fairness reports; not a model input unless `feature: true` is also set. */
  sensitive: z.boolean().optional(),
  /** Default: true for ordinary columns, false for sensitive ones. */
  feature: z.boolean().optional(),
};

const bandsSchema = z.strictObject({
  /** Ascending band edges; band i is [edges[i], edges[i+1]), the last band also includes its upper edge. */
  edges: z.array(z.number().finite()).min(2, 'declare at least two edges (one band)'),
  labels: z.array(z.string().min(1)).optional(),
});

export const numericColumnSchema = z.strictObject({
  ...typedCommon,
  type: z.literal('numeric'),
  min: z.number().finite(),
  max: z.number().finite(),
  /**
   * 'log1p': log1p(x − min), so the lower bound maps to 0 (for non-negative, heavy-tailed counts).
   * 'signed-log1p': sign(x)·log1p(|x|), for heavy tails on both sides of zero (e.g. balances).
   */
  transform: z.enum(['none', 'log1p', 'signed-log1p']).optional(),
  /** 'unit' → [0, 1]; 'centered' → [−1, 1] (midpoint of the declared range maps to 0). */
  scale: z.enum(['unit', 'centered']).optional(),
  /** What a blank cell means: a bad row ('error', default), the declared min, or a raw value. */
  missing: z.union([z.literal('error'), z.literal('min'), z.number().finite()]).optional(),
  /** Fairness segments for a sensitive numeric column (e.g. age bands). */
  groups: bandsSchema.optional(),
});

export const categoricalColumnSchema = z.strictObject({
  ...typedCommon,
  type: z.literal('categorical'),
  values: valueList,
  /** 'other' (default): unknown values go to the other bucket; 'error': they make the row bad. */
  unknown: z.enum(['other', 'error']).optional(),
});

export const booleanColumnSchema = z.strictObject({
  ...typedCommon,
  type: z.literal('boolean'),
  true: valueList,
  false: valueList,
});

export const labelColumnSchema = z.strictObject({
  ...common,
  role: z.literal('label'),
  positive: valueList,
  negative: valueList,
});

export const idColumnSchema = z.strictObject({ ...common, role: z.literal('id') });

export const consentColumnSchema = z.strictObject({
  ...common,
  role: z.literal('consent'),
  granted: valueList,
});

export const ignoreColumnSchema = z.strictObject({ ...common, role: z.literal('ignore') });

const typedColumnSchema = z.discriminatedUnion('type', [
  numericColumnSchema,
  categoricalColumnSchema,
  booleanColumnSchema,
]);

export const columnSchema = z.discriminatedUnion('role', [
  typedColumnSchema,
  labelColumnSchema,
  idColumnSchema,
  consentColumnSchema,
  ignoreColumnSchema,
]);

export type NumericColumn = z.infer<typeof numericColumnSchema>;
export type CategoricalColumn = z.infer<typeof categoricalColumnSchema>;
export type BooleanColumn = z.infer<typeof booleanColumnSchema>;
export type TypedColumn = NumericColumn | CategoricalColumn | BooleanColumn;
export type LabelColumn = z.infer<typeof labelColumnSchema>;
export type IdColumn = z.infer<typeof idColumnSchema>;
export type ConsentColumn = z.infer<typeof consentColumnSchema>;
export type IgnoreColumn = z.infer<typeof ignoreColumnSchema>;
export type Column = z.infer<typeof columnSchema>;

export function isTypedColumn(c: Column): c is TypedColumn {
  return 'type' in c;
}

/** Whether a typed column is a model input (sensitive columns are not, unless `feature: true`). */
export function isFeature(c: Column): boolean {
  if (!isTypedColumn(c)) return false;
  return c.feature ?? !c.sensitive;
}

/** Feature names a column contributes, in order; also fixes the one-hot layout. */
export function columnFeatureNames(c: Column): string[] {
  if (!isTypedColumn(c) || !isFeature(c)) return [];
  if (c.type === 'categorical') return [...c.values.map((v) => `${c.name}=${v}`), `${c.name}=${OTHER_BUCKET}`];
  return [c.name];
}

/** Labels of the bands of a grouped numeric column (declared, or "lo-hi" from the edges). */
export function bandLabels(groups: NonNullable<NumericColumn['groups']>): string[] {
  if (groups.labels) return groups.labels;
  const out: string[] = [];
  for (let i = 0; i + 1 < groups.edges.length; i++) out.push(`${groups.edges[i]}-${groups.edges[i + 1]}`);
  return out;
}

function disjoint(a: string[], b: string[]): string[] {
  const set = new Set(a);
  return b.filter((v) => set.has(v));
}

function duplicates(list: string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const v of list) (seen.has(v) ? dup : seen).add(v);
  return [...dup];
}

export const datasetSchemaSchema = z
  .strictObject({
    name: z.string().min(1),
    description: z.string().optional(),
    delimiter: z.enum([',', ';']).optional(),
    /** Throw on the first bad row instead of skipping and reporting it. */
    strict: z.boolean().optional(),
    columns: z.array(columnSchema).min(1),
  })
  .superRefine((schema, ctx) => {
    const cols = schema.columns;
    for (const name of duplicates(cols.map((c) => c.name))) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: `column "${name}" is declared more than once` });
    }
    const countRole = (role: string) => cols.filter((c) => c.role === role).length;
    if (countRole('label') !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['columns'],
        message: `exactly one column must have role "label" (found ${countRole('label')})`,
      });
    }
    for (const role of ['id', 'consent']) {
      if (countRole(role) > 1) {
        ctx.addIssue({ code: 'custom', path: ['columns'], message: `at most one column may have role "${role}"` });
      }
    }
    cols.forEach((c, i) => {
      const at = (...p: (string | number)[]) => ['columns', i, ...p];
      if (c.role === 'label') {
        const both = disjoint(c.positive, c.negative);
        if (both.length) {
          ctx.addIssue({ code: 'custom', path: at('negative'), message: `values both positive and negative: ${both.join(', ')}` });
        }
      } else if (!isTypedColumn(c)) {
        return;
      } else if (c.type === 'numeric') {
        if (!(c.min < c.max)) ctx.addIssue({ code: 'custom', path: at('max'), message: `max (${c.max}) must be greater than min (${c.min})` });
        if (c.sensitive && !c.groups) {
          ctx.addIssue({
            code: 'custom',
            path: at('groups'),
            message: 'a sensitive numeric column needs "groups" (band edges) so fairness segments are declared, not data-driven',
          });
        }
        if (c.groups) {
          const e = c.groups.edges;
          for (let j = 1; j < e.length; j++) {
            if (!(e[j] > e[j - 1])) {
              ctx.addIssue({ code: 'custom', path: at('groups', 'edges', j), message: 'band edges must be strictly ascending' });
            }
          }
          if (e[0] > c.min || e[e.length - 1] < c.max) {
            ctx.addIssue({
              code: 'custom',
              path: at('groups', 'edges'),
              message: `band edges [${e[0]}, ${e[e.length - 1]}] must cover the declared range [${c.min}, ${c.max}]`,
            });
          }
          if (c.groups.labels) {
            if (c.groups.labels.length !== e.length - 1) {
              ctx.addIssue({
                code: 'custom',
                path: at('groups', 'labels'),
                message: `${e.length - 1} bands need ${e.length - 1} labels (found ${c.groups.labels.length})`,
              });
            }
            for (const d of duplicates(c.groups.labels)) {
              ctx.addIssue({ code: 'custom', path: at('groups', 'labels'), message: `duplicate band label "${d}"` });
            }
          }
        }
      } else if (c.type === 'categorical') {
        for (const d of duplicates(c.values)) ctx.addIssue({ code: 'custom', path: at('values'), message: `duplicate value "${d}"` });
        if (c.values.includes(OTHER_BUCKET)) {
          ctx.addIssue({ code: 'custom', path: at('values'), message: `"${OTHER_BUCKET}" is reserved for the other bucket` });
        }
      } else {
        const both = disjoint(c.true, c.false);
        if (both.length) ctx.addIssue({ code: 'custom', path: at('false'), message: `values both true and false: ${both.join(', ')}` });
      }
    });
    const names = cols.flatMap(columnFeatureNames);
    if (names.length === 0) ctx.addIssue({ code: 'custom', path: ['columns'], message: 'the schema declares no feature column' });
    for (const d of duplicates(names)) {
      ctx.addIssue({ code: 'custom', path: ['columns'], message: `feature name "${d}" would be produced twice` });
    }
  });

export type DatasetSchema = z.infer<typeof datasetSchemaSchema>;

function formatPath(raw: unknown, path: PropertyKey[]): string {
  let out = '';
  let node: unknown = raw;
  for (const key of path) {
    if (typeof key === 'number') {
      out += `[${key}]`;
      const item = Array.isArray(node) ? node[key] : undefined;
      // Name the column too: "columns[3] (balance).min" is far easier to act on than "columns[3].min".
      if (item && typeof item === 'object' && typeof (item as { name?: unknown }).name === 'string') {
        out += ` ("${(item as { name: string }).name}")`;
      }
      node = item;
    } else {
      out += out ? `.${String(key)}` : String(key);
      node = node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[key] : undefined;
    }
  }
  return out || '(root)';
}

/** Validates a parsed JSON schema; `source` names the file in error messages. */
export function parseSchema(raw: unknown, source = 'schema'): DatasetSchema {
  const result = datasetSchemaSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${formatPath(raw, i.path)}: ${i.message}`);
  throw new FedmarkError('SCHEMA_INVALID', `${source}: invalid dataset schema:\n  ${problems.join('\n  ')}`, {
    issues: result.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}

export async function loadSchema(path: string): Promise<DatasetSchema> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FedmarkError('SCHEMA_UNREADABLE', `${path}: cannot read schema file (${(err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new FedmarkError('SCHEMA_NOT_JSON', `${path}: schema file is not valid JSON (${(err as Error).message})`);
  }
  return parseSchema(raw, path);
}

/** Number of model inputs, from the schema alone (no data needed). */
export function featureCount(schema: DatasetSchema): number {
  return featureNames(schema).length;
}

/** Model input names in encoding order, from the schema alone. */
export function featureNames(schema: DatasetSchema): string[] {
  return schema.columns.flatMap(columnFeatureNames);
}

/** The single label column (guaranteed by validation). */
export function labelColumn(schema: DatasetSchema): LabelColumn {
  const c = schema.columns.find((col): col is LabelColumn => col.role === 'label');
  if (!c) throw new FedmarkError('SCHEMA_INVALID', `schema "${schema.name}" has no label column`);
  return c;
}
