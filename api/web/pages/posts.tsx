/** @jsxImportSource hono/jsx */
// `/posts`: the newest posts across every community and shard node.
import type { PostJson } from '../../presenters.js';
import { OlderLink, PostList } from '../components.js';

export function PostsPage(props: { posts: PostJson[]; next: string | null; partial: boolean; missingNodes: string[]; limit: number }) {
  return (
    <>
      <h1>Newest posts</h1>
      {props.partial && (
        <p class="flash bad" role="alert" id="partial">
          Some posts may be missing: shard node(s) {props.missingNodes.join(', ')} did not answer.
        </p>
      )}
      <section class="card">
        <PostList posts={props.posts} showCommunity />
        <OlderLink href={props.next ? `/posts?before=${encodeURIComponent(props.next)}&limit=${props.limit}` : undefined} />
      </section>
    </>
  );
}
