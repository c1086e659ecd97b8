// Shapes of the Lemmy v3 responses we read, validated at the edge. Only the fields we use are
// required; the compile-time checks below keep them assignable from lemmy-js-client@0.19's types.
import type { CommunityView, GetSiteResponse, PostView } from 'lemmy-js-client';
import { z } from 'zod';
export { describeZodError } from '../zod-errors.js';

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

const flag = z
  .boolean()
  .nullish()
  .transform((v) => v ?? false);

/** Post fields both API versions share. */
const postFields = {
  id: z.number().int(),
  name: text(2000),
  url: optionalText(4000),
  body: optionalText(200_000),
  nsfw: flag,
  thumbnail_url: optionalText(4000),
  ap_id: text(2000),
  featured_community: flag,
  featured_local: flag,
};

export const postViewSchema = z.object({
  post: z.object({
    ...postFields,
    published: timestamp,
    updated: timestamp.nullish().transform((v) => v ?? null),
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

// ---- Lemmy 1.0 (API v4): counts moved onto the community and the post, `published_at`,
// `ap_id`, paged `{items, next_page}`. Transformed into the v3 shapes above, so that one mapping
// serves both versions.

const communityV4Schema = z.object({
  id: z.number().int(),
  name: text(255),
  title: optionalText(1000),
  sidebar: optionalText(100_000),
  summary: optionalText(10_000),
  icon: optionalText(2000),
  banner: optionalText(2000),
  nsfw: z
    .boolean()
    .nullish()
    .transform((v) => v ?? false),
  ap_id: text(2000),
  subscribers: count,
  posts: count,
});

export const communityResponseV4Schema = z
  .object({ community_view: z.object({ community: communityV4Schema }) })
  .transform(({ community_view: { community: c } }) => ({
    community_view: {
      community: {
        id: c.id,
        name: c.name,
        title: c.title ?? c.name,
        description: c.summary ?? c.sidebar,
        icon: c.icon,
        banner: c.banner,
        nsfw: c.nsfw,
        actor_id: c.ap_id,
      },
      counts: { subscribers: c.subscribers, posts: c.posts },
    },
  }));

const postViewV4Schema = z
  .object({
    post: z.object({
      ...postFields,
      published_at: timestamp,
      updated_at: timestamp.nullish().transform((v) => v ?? null),
      score: count,
      upvotes: count,
      downvotes: count,
      comments: count,
    }),
    creator: z.object({ name: text(255) }).nullish(),
  })
  .transform(({ post: p, creator }) => ({
    post: {
      id: p.id,
      name: p.name,
      url: p.url,
      body: p.body,
      published: p.published_at,
      updated: p.updated_at,
      nsfw: p.nsfw,
      thumbnail_url: p.thumbnail_url,
      ap_id: p.ap_id,
      featured_community: p.featured_community,
      featured_local: p.featured_local,
    },
    creator,
    counts: { score: p.score, upvotes: p.upvotes, downvotes: p.downvotes, comments: p.comments },
  }));

export const postsResponseV4Schema = z.object({
  items: z.array(postViewV4Schema).max(1000),
  next_page: z
    .string()
    .max(2000)
    .nullish()
    .transform((v) => v ?? null),
});

export type LemmyCommunity = z.infer<typeof communityResponseSchema>['community_view'];
export type LemmyPost = z.infer<typeof postViewSchema>;
export type LemmySite = z.infer<typeof siteResponseSchema>;

// A real Lemmy response must satisfy our schemas' input types; this fails to compile otherwise.
type Assignable<From, To extends From> = To;
export type _CheckCommunity = Assignable<z.input<typeof communityResponseSchema>['community_view'], CommunityView>;
export type _CheckPost = Assignable<z.input<typeof postViewSchema>, PostView>;
export type _CheckSite = Assignable<z.input<typeof siteResponseSchema>, GetSiteResponse>;

// The same check against Lemmy 1.0's own types (lemmy-js-client 1.0, installed as lemmy-js-client-v4).
export type _CheckCommunityV4 = Assignable<
  z.input<typeof communityResponseV4Schema>['community_view'],
  import('lemmy-js-client-v4').GetCommunityResponse['community_view']
>;
export type _CheckPostV4 = Assignable<z.input<typeof postViewV4Schema>, import('lemmy-js-client-v4').PostView>;
export type _CheckPostsV4 = Assignable<
  z.input<typeof postsResponseV4Schema>,
  import('lemmy-js-client-v4').PagedResponse<import('lemmy-js-client-v4').PostView>
>;
