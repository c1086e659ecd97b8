// Progressive enhancement: a post list that carries `data-stream` shows new and changed posts as
// they are stored, through the SSE stream (/api/stream). Without JavaScript (or EventSource) the
// page is the same, only static. Everything is built with textContent: post data is never HTML.
(() => {
  const list = document.querySelector('ul[data-stream]');
  if (!list || !('EventSource' in window)) return;
  const showCommunity = list.hasAttribute('data-show-community');

  const safeUrl = (u) => {
    try {
      const url = new URL(u);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
    } catch {
      return undefined;
    }
  };
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const render = (p) => {
    const li = el('li', { 'data-post-id': p.id, class: 'live' });
    const title = el('div', { class: 'title' });
    const original = safeUrl(p.apId);
    title.append(original ? el('a', { href: original, rel: 'noopener noreferrer nofollow' }, p.title) : p.title);
    const meta = el('div', { class: 'muted' });
    if (showCommunity && p.communityRef) {
      meta.append(el('a', { href: `/c/${encodeURIComponent(p.communityRef)}` }, p.communityRef), ' · ');
    }
    meta.append(`${p.author || 'unknown'} · `, el('time', { datetime: p.published }, new Date(p.published).toLocaleString()));
    meta.append(` · ${p.score} points · ${p.comments} comments${p.nsfw ? ' · NSFW' : ''}`);
    const link = safeUrl(p.url);
    if (link) meta.append(' · ', el('a', { href: link, rel: 'noopener noreferrer nofollow' }, new URL(link).host));
    li.append(title, meta);
    if (p.body) li.append(el('div', { class: 'muted' }, p.body.length > 280 ? `${p.body.slice(0, 280)}…` : p.body));
    return li;
  };

  const source = new EventSource(list.getAttribute('data-stream'));
  source.addEventListener('open', () => list.setAttribute('data-live', 'open'));
  source.addEventListener('post', (event) => {
    const post = JSON.parse(event.data);
    const li = render(post);
    const existing = [...list.children].find((c) => c.getAttribute('data-post-id') === post.id);
    if (existing) existing.replaceWith(li);
    else list.prepend(li);
    document.querySelector('[data-empty-posts]')?.remove();
  });
  // The stream says to re-read the page (cursor expired, or this tab fell behind): stop, the page still works.
  source.addEventListener('reset', () => source.close());
})();
