// Shapes of the Mastodon 4.x public API responses we read, validated at the edge. Only the fields
// we use are required; Pleroma, Akkoma and GoToSocial answer the same shapes for these endpoints.
import { z } from 'zod';
export { describeZodError } from '../zod-errors.js';

/** Status and account ids are snowflakes beyond 2^53: kept as decimal strings, compared as BigInt. */
export const snowflake = z.string().regex(/^\d{1,30}$/, 'is not a numeric id');

const timestamp = z
  .string()
  .max(64)
  .refine((s) => !Number.isNaN(Date.parse(s)), 'is not a timestamp')
  .transform((s) => new Date(s).toISOString());
const optionalText = (max: number) =>
  z
    .string()
    .max(max)
    .nullish()
    .transform((v) => (v ? v : null));
const count = z
  .number()
  .int()
  .nullish()
  .transform((v) => Math.max(0, v ?? 0));

/** /api/v1/instance (uri) or /api/v2/instance (domain); both have a version. */
export const instanceSchema = z
  .object({
    uri: z.string().max(2000).nullish(),
    domain: z.string().max(2000).nullish(),
    version: z.string().min(1).max(200),
    title: z.string().max(2000).nullish(),
  })
  .refine((i) => Boolean(i.uri || i.domain), 'has neither uri nor domain');

/** Mastodon sends a tag's daily uses as strings ("12"); other servers as numbers. */
const uses = z.union([z.number().int(), z.string().regex(/^\d{1,15}$/)]).transform((v) => Number(v));

export const tagSchema = z.object({
  name: z.string().min(1).max(200),
  url: z.string().max(2000),
  history: z
    .array(z.object({ uses: uses.nullish().transform((v) => v ?? 0) }))
    .max(400)
    .nullish()
    .transform((v) => v ?? null),
});

export const accountSchema = z.object({
  id: snowflake,
  username: z.string().min(1).max(200),
  acct: z.string().min(1).max(500),
  display_name: optionalText(2000),
  note: optionalText(100_000),
  url: optionalText(2000),
  avatar: optionalText(2000),
  header: optionalText(2000),
  followers_count: count,
  statuses_count: count,
});

const mediaSchema = z.object({
  type: z.string().max(50),
  preview_url: optionalText(4000),
});

export const statusSchema = z.object({
  id: snowflake,
  uri: optionalText(4000),
  url: optionalText(4000),
  created_at: timestamp,
  edited_at: timestamp.nullish().transform((v) => v ?? null),
  // Not capped here: a long post is stored cut, not refused.
  content: z
    .string()
    .nullish()
    .transform((v) => v ?? ''),
  spoiler_text: z
    .string()
    .nullish()
    .transform((v) => v ?? ''),
  sensitive: z
    .boolean()
    .nullish()
    .transform((v) => v ?? false),
  replies_count: count,
  favourites_count: count,
  account: z.object({ acct: z.string().max(500) }),
  media_attachments: z
    .array(mediaSchema)
    .max(100)
    .nullish()
    .transform((v) => v ?? []),
  // A reblog wraps the original status; only whether there is one matters to us.
  reblog: z
    .object({ id: snowflake })
    .nullish()
    .transform((v) => v ?? null),
});

export const statusesSchema = z.array(statusSchema).max(1000);

export type MastodonInstance = z.infer<typeof instanceSchema>;
export type MastodonTag = z.infer<typeof tagSchema>;
export type MastodonAccount = z.infer<typeof accountSchema>;
export type MastodonStatus = z.infer<typeof statusSchema>;
