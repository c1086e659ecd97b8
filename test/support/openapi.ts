// Conformance with the OpenAPI document (GET /openapi.json): which operation a request is, and
// whether an answer is one it documents — its status, and its JSON body against the schema
// (ajv, JSON Schema 2020-12, which OpenAPI 3.1 schemas are). The JSON-calling helpers of the
// contract tests (support/api.ts call(), and the local ones) check every answer they get.
import type { Hono } from 'hono';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import fc from 'fast-check';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type OpenApiDoc = { paths: Record<string, Record<string, any>>; components?: Record<string, any> };

export interface Operation {
  method: string;
  /** The document's path template, e.g. /api/communities/{ref} */
  template: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  op: any;
}

/** Paths the document describes; others (website, /static, /docs, /metrics) are not checked. */
export const isDocumentedArea = (path: string) =>
  path === '/api' || path.startsWith('/api/') || path === '/healthz' || path === '/graphql' || path.startsWith('/graphql?');

const escapePointer = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');

/**
 * `allOf` of object schemas (and $refs to them) merged into one object schema, so that closing
 * objects (below) keeps the union of their properties: `Community` extended with `pausedAt`.
 */
function flattenAllOf(node: unknown, doc: OpenApiDoc): unknown {
  if (Array.isArray(node)) node.forEach((n) => flattenAllOf(n, doc));
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    Object.values(o).forEach((v) => flattenAllOf(v, doc));
    const parts = Array.isArray(o.allOf) ? (o.allOf as JsonSchema[]).map((p) => deref(doc, p)) : [];
    if (parts.length && parts.every((p) => p.type === 'object' && !p.allOf && !p.anyOf && !p.oneOf)) {
      delete o.allOf;
      o.type = 'object';
      o.properties = Object.assign({}, ...parts.map((p) => structuredClone(p.properties ?? {})));
      o.required = [...new Set(parts.flatMap((p) => p.required ?? []))];
      if (parts.some((p) => p.additionalProperties !== undefined)) o.additionalProperties = true;
    }
  }
  return node;
}

/** Every object schema with `properties` and no `additionalProperties` gets `additionalProperties: false`. */
function closeObjects(node: unknown): unknown {
  if (Array.isArray(node)) node.forEach(closeObjects);
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (o.type === 'object' && o.properties && !('additionalProperties' in o)) o.additionalProperties = false;
    Object.values(o).forEach(closeObjects);
  }
  return node;
}

export class Conformance {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly templates: { template: string; segments: string[]; literals: number }[];

  constructor(readonly doc: OpenApiDoc) {
    // Answers are checked closed: a field the document does not describe is a failure too.
    this.ajv.addSchema(closeObjects(flattenAllOf(structuredClone(doc), doc)) as object, 'openapi.json');
    this.templates = Object.keys(doc.paths)
      .map((template) => {
        const segments = template.split('/');
        return { template, segments, literals: segments.filter((s) => !/^\{.+\}$/.test(s)).length };
      })
      .sort((a, b) => b.literals - a.literals);
  }

  /** The operation a request is (the most literal template that matches), if documented. */
  operation(method: string, url: string): Operation | undefined {
    const path = new URL(url, 'http://x').pathname.replace(/(.)\/$/, '$1');
    const parts = path.split('/');
    const m = method.toLowerCase();
    for (const t of this.templates) {
      if (t.segments.length !== parts.length) continue;
      if (!t.segments.every((s, i) => (/^\{.+\}$/.test(s) ? parts[i] !== '' : s === parts[i]))) continue;
      const op = this.doc.paths[t.template][m];
      if (op) return { method: m, template: t.template, op };
    }
    return undefined;
  }

  /** A JSON schema validator for a pointer into the document (compiled once). */
  validator(pointer: string): ValidateFunction {
    let v = this.validators.get(pointer);
    if (!v) {
      v = this.ajv.compile({ $ref: `openapi.json#${pointer}` });
      this.validators.set(pointer, v);
    }
    return v;
  }

  /**
   * What is wrong with an answer to `method url` (empty when it conforms): a status the operation
   * does not document, a body its schema refuses, a content type it does not list. A request that
   * is no documented operation may only be answered 404 with the error body.
   */
  problems(method: string, url: string, res: { status: number; contentType: string | null; text: string }): string[] {
    const found = this.operation(method, url);
    if (!found) {
      if (res.status !== 404) return [`${method} ${url} is not in the document, yet answered ${res.status}`];
      return this.bodyProblems('/components/schemas/Error', res.text, `${method} ${url} (undocumented) 404`);
    }
    const where = `${method.toUpperCase()} ${found.template} → ${res.status}`;
    const response = found.op.responses?.[String(res.status)];
    if (!response)
      return [`${where}: status ${res.status} is not documented (documented: ${Object.keys(found.op.responses ?? {}).join(', ')})`];
    const content = response.content as Record<string, unknown> | undefined;
    if (!content) return res.text === '' ? [] : [`${where}: documented without a body, got ${JSON.stringify(res.text.slice(0, 200))}`];
    const type = (res.contentType ?? '').split(';')[0].trim().toLowerCase();
    if (!(type in content))
      return [`${where}: content type ${JSON.stringify(type)} is not documented (${Object.keys(content).join(', ')})`];
    if (type !== 'application/json') return [];
    const pointer = `/paths/${escapePointer(found.template)}/${found.method}/responses/${res.status}/content/${escapePointer(type)}/schema`;
    return this.bodyProblems(pointer, res.text, where);
  }

  private bodyProblems(pointer: string, text: string, where: string): string[] {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return [`${where}: the body is not JSON: ${JSON.stringify(text.slice(0, 200))}`];
    }
    const validate = this.validator(pointer);
    if (validate(body)) return [];
    return (validate.errors ?? []).slice(0, 5).map((e) => `${where}: body${e.instancePath} ${e.message} (${JSON.stringify(e.params)})`);
  }
}

const byApp = new WeakMap<object, Promise<Conformance>>();

/** The conformance checker for an app's own document (fetched once per app). */
export function conformanceOf(app: Hono): Promise<Conformance> {
  const cached = byApp.get(app);
  if (cached) return cached;
  const loading = (async () => {
    const res = await app.request('/openapi.json');
    if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}`);
    return new Conformance((await res.json()) as OpenApiDoc);
  })();
  byApp.set(app, loading);
  return loading;
}

/** Throws, naming the route, when an answer the app gave is not what its document says. */
export async function expectConforms(
  app: Hono,
  method: string,
  url: string,
  res: { status: number; headers: Headers; text: string },
): Promise<void> {
  if (!isDocumentedArea(url) || method === 'HEAD' || method === 'OPTIONS') return;
  const problems = (await conformanceOf(app)).problems(method, url, {
    status: res.status,
    contentType: res.headers.get('content-type'),
    text: res.text,
  });
  if (problems.length) throw new Error(`Answer does not conform to /openapi.json:\n  ${problems.join('\n  ')}`);
}

// ---- Generating requests from the document (the property-based test) ----

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type JsonSchema = Record<string, any>;

/** Values to use for a property or parameter of this name instead of generating one (reaching real data). */
export type Hints = Record<string, fc.Arbitrary<unknown>>;

/** Follows a `$ref` into the document. */
export function deref(doc: OpenApiDoc, schema: JsonSchema): JsonSchema {
  let s = schema;
  for (let i = 0; s?.$ref && i < 10; i++) {
    const parts = String(s.$ref).replace(/^#\//, '').split('/');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    s = parts.reduce((o: any, p) => o?.[p.replaceAll('~1', '/').replaceAll('~0', '~')], doc);
  }
  return s ?? {};
}

/**
 * Values valid for a JSON schema, for the subset the document uses: $ref, anyOf/oneOf, type
 * (string with enum/pattern/maxLength, integer and number with bounds, boolean, null, arrays,
 * objects with required and optional properties), const. `hints` by property name come first.
 */
export function validValue(doc: OpenApiDoc, schema: JsonSchema, hints: Hints = {}, depth = 0): fc.Arbitrary<unknown> {
  const s = deref(doc, schema);
  if (depth > 6) return fc.constant(null);
  if (s.const !== undefined) return fc.constant(s.const);
  if (Array.isArray(s.enum)) return fc.constantFrom(...s.enum);
  const alternatives = s.anyOf ?? s.oneOf;
  if (Array.isArray(alternatives)) return fc.oneof(...alternatives.map((a: JsonSchema) => validValue(doc, a, hints, depth + 1)));
  if (Array.isArray(s.type)) return fc.oneof(...s.type.map((t: string) => validValue(doc, { ...s, type: t }, hints, depth + 1)));
  switch (s.type) {
    case 'string':
      if (s.pattern)
        return fc
          .stringMatching(new RegExp(s.pattern))
          .filter((v) => v.length <= (s.maxLength ?? Infinity) && v.length >= (s.minLength ?? 0));
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 40, 40) });
    case 'integer':
      return fc.integer({ min: s.minimum ?? -1_000_000, max: s.maximum ?? 1_000_000 });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e6, max: s.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(validValue(doc, s.items ?? {}, hints, depth + 1), {
        minLength: s.minItems ?? 0,
        maxLength: Math.min(s.maxItems ?? 3, 3),
      });
    case 'object': {
      const props = (s.properties ?? {}) as Record<string, JsonSchema>;
      const required = new Set<string>(s.required ?? []);
      const shape = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, hints[k] ?? validValue(doc, v, hints, depth + 1)]));
      const optional = Object.keys(props).filter((k) => !required.has(k));
      const record = fc.record(shape, { requiredKeys: [...required] });
      const min = s.minProperties ?? 0;
      return optional.length && min ? record.filter((o) => Object.keys(o).length >= min) : record;
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Values a schema may refuse: another type, a value out of its bounds, an unknown or missing key, garbage. */
export function invalidValue(doc: OpenApiDoc, schema: JsonSchema, hints: Hints = {}): fc.Arbitrary<unknown> {
  const s = deref(doc, schema);
  const garbage = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.string({ maxLength: 30 }),
    fc.constantFrom('', ' ', '%', '\u0000', '🙂', '-1', 'null'),
  );
  const tweaks: fc.Arbitrary<unknown>[] = [garbage];
  if (s.type === 'integer' || s.type === 'number') {
    if (s.minimum !== undefined) tweaks.push(fc.integer({ min: -1000, max: s.minimum - 1 }));
    if (s.maximum !== undefined) tweaks.push(fc.integer({ min: s.maximum + 1, max: s.maximum + 100_000 }));
    tweaks.push(fc.double({ noInteger: true, noNaN: true, noDefaultInfinity: true }));
  }
  if (s.type === 'string' && s.maxLength) tweaks.push(fc.string({ minLength: s.maxLength + 1, maxLength: s.maxLength + 50 }));
  if (s.type === 'object' && s.properties) {
    const valid = validValue(doc, s, hints) as fc.Arbitrary<Record<string, unknown>>;
    const keys = Object.keys(s.properties);
    tweaks.push(valid.map((o) => ({ ...o, ['unexpected' + keys.length]: 1 })));
    tweaks.push(
      fc.tuple(valid, fc.constantFrom(...keys), garbage).map(([o, k, g]) => ({ ...o, [k]: g })),
      fc.tuple(valid, fc.constantFrom(...keys)).map(([o, k]) => Object.fromEntries(Object.entries(o).filter(([key]) => key !== k))),
    );
  }
  return fc.oneof(...tweaks);
}

export interface GeneratedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/**
 * A request for one operation: each parameter and the body valid (often) or not, plus raw garbage
 * bodies. Path parameters are never empty, "." or ".." (a URL cannot carry those as a segment).
 */
export function requestFor(
  doc: OpenApiDoc,
  o: Operation,
  hints: Hints,
  extraHeaders: fc.Arbitrary<Record<string, string>>,
): fc.Arbitrary<GeneratedRequest> {
  const params = (o.op.parameters ?? []) as { name: string; in: string; required?: boolean; schema: JsonSchema }[];
  const asText = (v: unknown) => (typeof v === 'string' ? v : (JSON.stringify(v) ?? ''));
  const paramValue = (p: (typeof params)[number]) =>
    fc
      .oneof({ weight: 3, arbitrary: hints[p.name] ?? validValue(doc, p.schema) }, { weight: 1, arbitrary: invalidValue(doc, p.schema) })
      .map(asText);
  const pathArbs = Object.fromEntries(
    params.filter((p) => p.in === 'path').map((p) => [p.name, paramValue(p).filter((v) => v !== '' && v !== '.' && v !== '..')]),
  );
  const queryArbs = Object.fromEntries(params.filter((p) => p.in === 'query').map((p) => [p.name, paramValue(p)]));
  const bodySchema = o.op.requestBody?.content?.['application/json']?.schema as JsonSchema | undefined;
  const body: fc.Arbitrary<{ text?: string; type?: string }> = bodySchema
    ? fc.oneof(
        { weight: 4, arbitrary: validValue(doc, bodySchema, hints).map((v) => ({ text: JSON.stringify(v), type: 'application/json' })) },
        {
          weight: 2,
          arbitrary: invalidValue(doc, bodySchema, hints).map((v) => ({ text: JSON.stringify(v) ?? '', type: 'application/json' })),
        },
        { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map((t) => ({ text: t, type: 'application/json' })) },
        { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded').map((type) => ({ text: 'a=1', type })) },
      )
    : fc.constant({});
  return fc
    .record({ path: fc.record(pathArbs), query: fc.record(queryArbs, { requiredKeys: [] }), body, headers: extraHeaders })
    .map(({ path, query, body, headers }) => {
      const p = o.template.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(path[name] as string));
      const q = new URLSearchParams(query as Record<string, string>).toString();
      return {
        method: o.method.toUpperCase(),
        url: q ? `${p}?${q}` : p,
        headers: { ...headers, ...(body.type ? { 'content-type': body.type } : {}) },
        body: body.text,
      };
    });
}

/** Every operation of the document. */
export function operationsOf(doc: OpenApiDoc): Operation[] {
  return Object.entries(doc.paths).flatMap(([template, ops]) =>
    Object.entries(ops)
      .filter(([m]) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
      .map(([method, op]) => ({ method, template, op })),
  );
}
