// Shapes of the Lemmy v3 responses we read, validated at the edge. Only the fields we use are
// required; the compile-time checks below keep them assignable from lemmy-js-client@0.19's types.
import type { CommunityView, GetSiteResponse, PostView } from 'lemmy-js-client';
import { z } from 'zod';

/** Lemmy 0.18 sends naive UTC timestamps ("2023-06-01T12:00:00.123456"); 0.19 adds "Z". */
const timestamp = z
  .string()
  .max(64)
  .transform((s) => (/(Z|[+-]\d{2}:?\d{2})$/i.test(s) ? s : `${s}Z`))
  .refine((s) => !Number.isNaN(Date.parse(s)), 'is not a timestamp');
const text = (max: number) => z.string().max(max);
const optionalText = (max: number) =>
  z
    .string()
    .max(max)
    .nullish()
    .transform((v) => v ?? null);
const count = z
  .number()
  .int()
  .nullish()
  .transform((v) => v ?? 0);

export const communitySchema = z.object({
  id: z.number().int(),
  name: text(255),
  title: text(1000),
  description: optionalText(100_000),
  icon: optionalText(2000),
  banner: optionalText(2000),
  nsfw: z
    .boolean()
    .nullish()
    .transform((v) => v ?? false),
  actor_id: text(2000),
  removed: z.boolean().nullish(),
  deleted: z.boolean().nullish(),
});

export const communityResponseSchema = z.object({
  community_view: z.object({
    community: communitySchema,
    counts: z.object({ subscribers: count, posts: count }),
  }),
});

export const postViewSchema = z.object({
  post: z.object({
    id: z.number().int(),
    name: text(2000),
    url: optionalText(4000),
    body: optionalText(200_000),
    published: timestamp,
    updated: timestamp.nullish().transform((v) => v ?? null),
    nsfw: z
      .boolean()
      .nullish()
      .transform((v) => v ?? false),
    thumbnail_url: optionalText(4000),
    ap_id: text(2000),
    featured_community: z
      .boolean()
      .nullish()
      .transform((v) => v ?? false),
    featured_local: z
      .boolean()
      .nullish()
      .transform((v) => v ?? false),
  }),
  creator: z.object({ name: text(255) }).nullish(),
  counts: z
    .object({ score: count, upvotes: count, downvotes: count, comments: count })
    .nullish()
    .transform((v) => v ?? { score: 0, upvotes: 0, downvotes: 0, comments: 0 }),
});

export const postsResponseSchema = z.object({
  posts: z.array(postViewSchema).max(1000),
});

export const siteResponseSchema = z.object({
  site_view: z.object({ site: z.object({ name: text(1000) }) }),
  version: text(100).nullish(),
});

export type LemmyCommunity = z.infer<typeof communityResponseSchema>['community_view'];
export type LemmyPost = z.infer<typeof postViewSchema>;
export type LemmySite = z.infer<typeof siteResponseSchema>;

// A real Lemmy response must satisfy our schemas' input types; this fails to compile otherwise.
type Assignable<From, To extends From> = To;
export type _CheckCommunity = Assignable<z.input<typeof communityResponseSchema>['community_view'], CommunityView>;
export type _CheckPost = Assignable<z.input<typeof postViewSchema>, PostView>;
export type _CheckSite = Assignable<z.input<typeof siteResponseSchema>, GetSiteResponse>;

/** "posts[3].post.published: Invalid input" style messages naming the bad field. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => {
      const where = i.path.reduce<string>(
        (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)),
        '',
      );
      return `${where || '(root)'}: ${i.message}`;
    })
    .join('; ');
}
