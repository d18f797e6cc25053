import { describe, expect, it } from 'vitest';
import { buildElements, idRulesSchema, normaliseId, rowsOf, type IdRulesInput } from '../../../src/vertical/psi/normalise.ts';

const rules = (r: IdRulesInput) => idRulesSchema.parse(r);
const value = (raw: string, r: IdRulesInput) => {
  const n = normaliseId(raw, rules(r));
  return n.ok ? n.value : `!${n.reason}`;
};

describe('id normalisation', () => {
  it('e-mail: trim, lower-case, IDNA domain, trailing dot; optional plus tags and gmail dots', () => {
    const e = { kind: 'email' } as const;
    expect(value('  Jane.Doe@Example.COM \t', e)).toBe('jane.doe@example.com');
    expect(value('jane@example.com.', e)).toBe('jane@example.com');
    expect(value('ＪＡＮＥ@ＥＸＡＭＰＬＥ.com', e)).toBe('jane@example.com'); // full-width, NFKC
    expect(value('jane@bücher.de', e)).toBe('jane@xn--bcher-kva.de');
    expect(value('jane+news@example.com', e)).toBe('jane+news@example.com');
    expect(value('jane+news@example.com', { kind: 'email', stripPlusTag: true })).toBe('jane@example.com');
    expect(value('Jane.Doe+x@GoogleMail.com', { kind: 'email', gmailDots: true, stripPlusTag: true })).toBe('janedoe@gmail.com');
    expect(value('jane.doe@example.com', { kind: 'email', gmailDots: true })).toBe('jane.doe@example.com');
    for (const bad of ['jane', '@example.com', 'jane@', 'ja ne@example.com', 'jane@localhost', 'a@b@c.de', '   ']) expect(value(bad, e)).toMatch(/^!/);
  });

  it('phone: national, international-prefix and E.164 forms become the same E.164 number', () => {
    const de = { kind: 'phone', defaultCountryCode: '49' } as const;
    for (const form of ['030 1234567', '(030) 123-4567', '+49 30 1234567', '0049 30 1234567', '+49-30-123 45 67', '30 1234567', '０３０ １２３４５６７'])
      expect(value(form, de)).toBe('+49301234567');
    expect(value('+44 20 7946 0000', de)).toBe('+442079460000');
    const us = { kind: 'phone', defaultCountryCode: '1', trunkPrefix: '1', internationalPrefix: '011' } as const;
    expect(value('(555) 123-4567', us)).toBe('+15551234567');
    expect(value('1 555 123 4567', us)).toBe('+15551234567');
    expect(value('011 49 30 1234567', us)).toBe('+49301234567');
    // Italy keeps the leading 0 of a landline inside E.164: no trunk prefix.
    expect(value('06 1234 5678', { kind: 'phone', defaultCountryCode: '39', trunkPrefix: '' })).toBe('+390612345678');
    for (const bad of ['call me', '+49 30 1234 ext 5', '12', '+0 30 1234567', '+4930123456789012']) expect(value(bad, de)).toMatch(/^!/);
  });

  it('digits: separators removed, letters refused, optional leading zeros', () => {
    expect(value(' 00-123 456 ', { kind: 'digits' })).toBe('00123456');
    expect(value('00-123 456', { kind: 'digits', stripLeadingZeros: true })).toBe('123456');
    expect(value('000', { kind: 'digits', stripLeadingZeros: true })).toBe('0');
    expect(value('CUST-00123', { kind: 'digits' })).toMatch(/^!.*only digits/);
    expect(value('12', { kind: 'digits', minDigits: 6 })).toMatch(/^!expected 6–64 digits/);
  });

  it('text: whitespace collapsed, case folded unless preserved', () => {
    expect(value('  Max   Müller ', { kind: 'text' })).toBe('max müller');
    expect(value('  Max   Müller ', { kind: 'text', case: 'preserve' })).toBe('Max Müller');
    expect(value('x'.repeat(300), { kind: 'text' })).toMatch(/^!.*longer than 256/);
  });

  it('rejects rules that are not well formed', () => {
    expect(idRulesSchema.safeParse({ kind: 'phone' }).success).toBe(false);
    expect(idRulesSchema.safeParse({ kind: 'phone', defaultCountryCode: '+49' }).success).toBe(false);
    expect(idRulesSchema.safeParse({ kind: 'email', lowercase: true }).success).toBe(false);
  });
});

describe('building a party set', () => {
  it('duplicates after normalisation are one element and keep every row; invalid rows are counted or refused', () => {
    const raw = ['B@x.io', 'a@x.io', 'b@x.io ', 'bogus', 'A@X.IO', 'c@x.io', 'b@X.io'];
    const el = buildElements(raw, rules({ kind: 'email' }));
    expect(el.values).toEqual(['b@x.io', 'a@x.io', 'c@x.io']);
    expect(rowsOf(el, 0)).toEqual([0, 2, 6]);
    expect(rowsOf(el, 1)).toEqual([1, 4]);
    expect(rowsOf(el, 2)).toEqual([5]);
    expect(el).toMatchObject({ rowsRead: 7, duplicateRows: 3, invalidRows: 1, invalidExamples: [{ row: 3 }] });
    expect(() => buildElements(raw, rules({ kind: 'email' }), 'error')).toThrow(/row 4: id "bogus" cannot be normalised as email/);
    const empty = buildElements([], rules({ kind: 'email' }));
    expect(empty.values).toEqual([]);
    expect(Array.from(empty.rowStart)).toEqual([0]);
  });
});
