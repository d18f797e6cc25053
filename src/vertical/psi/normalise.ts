/**
 * Customer-id normalisation for PSI. Two partners match a customer only if they turn the same real
 * id into the same bytes, so the rules are fixed by the job spec (never guessed from the data) and
 * every party applies them identically. Every rule starts with Unicode NFKC (full-width digits,
 * ligatures and compatibility forms become their plain equivalents) and trims Unicode whitespace.
 *
 * - `email`: the whole address lower-cased (local parts are case-sensitive in RFC 5321, but no
 *   mainstream provider treats them so and every ad platform's matching lower-cases them), domain in
 *   IDNA ASCII form without a trailing dot. Optional: `stripPlusTag` (drop "+tag" from the local
 *   part) and `gmailDots` (drop dots in the local part for gmail.com/googlemail.com, and map
 *   googlemail.com to gmail.com).
 * - `phone`: E.164 ("+" country code subscriber number). Visual separators (space, - . / ( ))
 *   are removed; "+CC…" is kept, the international call prefix ("00" by default) becomes "+", a
 *   national number has its trunk prefix ("0" by default; "1" for NANP; "" for Italy, where the 0 is
 *   part of the number) replaced by the declared default country code. 7–15 digits after the "+".
 * - `digits`: customer numbers; separators (space - . / _) removed, then only digits are allowed
 *   (letters make the id invalid rather than being dropped silently); optionally leading zeros off.
 * - `text`: any other id; internal whitespace runs collapsed to one space, case folded by default
 *   (NFKC + toLowerCase, locale-independent).
 *
 * Duplicates: ids that normalise to the same value are one element of the party's set; every row
 * carrying that id is reported as aligned to the element (see PsiElements.rowsOf).
 */
import { domainToASCII } from 'node:url';
import { z } from 'zod';
import { FedmarkError } from '../../errors.ts';

export const MAX_NORMALISED_LENGTH = 256;

export const idRulesSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('email'),
    stripPlusTag: z.boolean().default(false),
    gmailDots: z.boolean().default(false),
  }),
  z.strictObject({
    kind: z.literal('phone'),
    /** Country calling code for national numbers, digits only (e.g. "49", "1", "39"). */
    defaultCountryCode: z.string().regex(/^[1-9][0-9]{0,2}$/, 'a country calling code: 1–3 digits, no "+"'),
    trunkPrefix: z
      .string()
      .regex(/^[0-9]?$/, 'a trunk prefix is one digit or empty')
      .default('0'),
    internationalPrefix: z
      .string()
      .regex(/^[0-9]{2,4}$/, 'an international call prefix is 2–4 digits')
      .default('00'),
  }),
  z.strictObject({
    kind: z.literal('digits'),
    stripLeadingZeros: z.boolean().default(false),
    minDigits: z.number().int().min(1).max(64).default(1),
    maxDigits: z.number().int().min(1).max(64).default(64),
  }),
  z.strictObject({
    kind: z.literal('text'),
    case: z.enum(['fold', 'preserve']).default('fold'),
  }),
]);
export type IdRules = z.infer<typeof idRulesSchema>;
export type IdRulesInput = z.input<typeof idRulesSchema>;

export type Normalised = { ok: true; value: string } | { ok: false; reason: string };

const bad = (reason: string): Normalised => ({ ok: false, reason });

function email(s: string, r: Extract<IdRules, { kind: 'email' }>): Normalised {
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) return bad('not an e-mail address (needs local-part@domain)');
  let local = s.slice(0, at).toLowerCase();
  if (/[\s@"<>(),;:\\[\]]/.test(local)) return bad('the local part contains a character an address cannot have unquoted');
  let domain = domainToASCII(s.slice(at + 1).replace(/\.$/, '')).toLowerCase();
  if (!domain || !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) return bad('the domain is not a valid host name');
  if (r.stripPlusTag) {
    const plus = local.indexOf('+');
    if (plus > 0) local = local.slice(0, plus);
  }
  if (r.gmailDots && (domain === 'gmail.com' || domain === 'googlemail.com')) {
    local = local.replace(/\./g, '');
    domain = 'gmail.com';
  }
  if (local.length === 0 || local.length > 64) return bad('the local part must be 1–64 characters');
  return { ok: true, value: `${local}@${domain}` };
}

function phone(s: string, r: Extract<IdRules, { kind: 'phone' }>): Normalised {
  const compact = s.replace(/[\s\-./()]/g, '');
  let digits: string;
  if (compact.startsWith('+')) {
    digits = compact.slice(1);
  } else if (!/^[0-9]+$/.test(compact)) {
    return bad('a phone number may contain only digits, a leading "+" and separators');
  } else if (compact.startsWith(r.internationalPrefix)) {
    digits = compact.slice(r.internationalPrefix.length);
  } else if (r.trunkPrefix !== '' && compact.startsWith(r.trunkPrefix)) {
    digits = r.defaultCountryCode + compact.slice(r.trunkPrefix.length);
  } else {
    digits = r.defaultCountryCode + compact;
  }
  if (!/^[1-9][0-9]*$/.test(digits)) return bad('not a phone number (digits after the country code expected)');
  if (digits.length < 7 || digits.length > 15) return bad(`E.164 numbers have 7–15 digits, this one has ${digits.length}`);
  return { ok: true, value: `+${digits}` };
}

function digitsOnly(s: string, r: Extract<IdRules, { kind: 'digits' }>): Normalised {
  let d = s.replace(/[\s\-./_]/g, '');
  if (!/^[0-9]+$/.test(d)) return bad('a digits-only id may contain only digits and separators');
  if (r.stripLeadingZeros) d = d.replace(/^0+(?=[0-9])/, '');
  if (d.length < r.minDigits || d.length > r.maxDigits) return bad(`expected ${r.minDigits}–${r.maxDigits} digits, found ${d.length}`);
  return { ok: true, value: d };
}

/** Normalises one raw id cell; an id that cannot be normalised comes back with the reason. */
export function normaliseId(raw: string, rules: IdRules): Normalised {
  if (typeof raw !== 'string') return bad('the id is not text');
  const s = raw.normalize('NFKC').trim();
  if (s === '') return bad('the id is empty');
  let out: Normalised;
  switch (rules.kind) {
    case 'email':
      out = email(s, rules);
      break;
    case 'phone':
      out = phone(s, rules);
      break;
    case 'digits':
      out = digitsOnly(s, rules);
      break;
    case 'text': {
      const collapsed = s.replace(/\s+/g, ' ');
      out = { ok: true, value: rules.case === 'fold' ? collapsed.toLowerCase() : collapsed };
      break;
    }
  }
  if (out.ok && out.value.length > MAX_NORMALISED_LENGTH) return bad(`the normalised id is longer than ${MAX_NORMALISED_LENGTH} characters`);
  return out;
}

/** A party's set: distinct normalised ids and, for each, every input row that carries it. */
export interface PsiElements {
  /** Distinct normalised ids, in order of first appearance. */
  values: string[];
  /** Rows of element e are rowIndex[rowStart[e] .. rowStart[e + 1]), ascending. */
  rowStart: Int32Array;
  rowIndex: Int32Array;
  rowsRead: number;
  /** Rows whose id normalised to a value an earlier row already had. */
  duplicateRows: number;
  invalidRows: number;
  /** The first few invalid rows (row index, 0-based, and why), for the error report. */
  invalidExamples: { row: number; reason: string }[];
}

export function rowsOf(el: PsiElements, element: number): number[] {
  return Array.from(el.rowIndex.subarray(el.rowStart[element], el.rowStart[element + 1]));
}

const MAX_EXAMPLES = 20;

/**
 * Builds the party's set from its raw id cells (one per row). `invalid: 'error'` refuses the input
 * on the first id that cannot be normalised; 'skip' leaves such rows out of the PSI and counts them.
 */
export function buildElements(rawIds: readonly string[], rules: IdRules, invalid: 'skip' | 'error' = 'skip'): PsiElements {
  const index = new Map<string, number>();
  const values: string[] = [];
  const elementOfRow = new Int32Array(rawIds.length).fill(-1);
  const counts: number[] = [];
  const invalidExamples: { row: number; reason: string }[] = [];
  let invalidRows = 0;
  let duplicateRows = 0;
  for (let row = 0; row < rawIds.length; row++) {
    const n = normaliseId(rawIds[row], rules);
    if (!n.ok) {
      if (invalid === 'error') {
        throw new FedmarkError(
          'PSI_BAD_ID',
          `row ${row + 1}: id ${JSON.stringify(String(rawIds[row]).slice(0, 60))} cannot be normalised as ${rules.kind}: ${n.reason}`,
          {
            row,
          },
        );
      }
      invalidRows++;
      if (invalidExamples.length < MAX_EXAMPLES) invalidExamples.push({ row, reason: n.reason });
      continue;
    }
    let e = index.get(n.value);
    if (e === undefined) {
      e = values.length;
      index.set(n.value, e);
      values.push(n.value);
      counts.push(0);
    } else {
      duplicateRows++;
    }
    counts[e]++;
    elementOfRow[row] = e;
  }
  const rowStart = new Int32Array(values.length + 1);
  for (let e = 0; e < values.length; e++) rowStart[e + 1] = rowStart[e] + counts[e];
  const fill = rowStart.slice(0, values.length);
  const rowIndex = new Int32Array(rawIds.length - invalidRows);
  for (let row = 0; row < rawIds.length; row++) {
    const e = elementOfRow[row];
    if (e >= 0) rowIndex[fill[e]++] = row;
  }
  return { values, rowStart, rowIndex, rowsRead: rawIds.length, duplicateRows, invalidRows, invalidExamples };
}
