-- A hash of what a sync stores of a post: a sync compares it (a read) and writes only new or
-- changed posts, so a sync that finds nothing new writes nothing to the shard.
alter table posts add column content_hash text;
