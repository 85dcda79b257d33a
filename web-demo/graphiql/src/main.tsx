// GraphiQL for one Shopgraph server (the router or a subgraph), served by
// that server from its own origin: no CDN, no other host. The server fills
// in the two <meta> tags of index.html (see fetcher.ts for how they are
// used); under `npm run dev` they keep their placeholders and the router's
// paths are used.
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import './page.css';
import { createFetcher, type Endpoints } from './fetcher';

function meta(name: string, fallback: string): string {
  const value = document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;
  return value && !value.startsWith('__') ? value : fallback;
}

const endpoints: Endpoints = {
  http: meta('graphiql-endpoint', '/graphql'),
  subscriptions: meta('graphiql-subscriptions', '/graphql'),
};

const DEFAULT_QUERY = `# GraphiQL, served by this server itself: it works offline.
#
# Queries and mutations go over HTTP (${endpoints.http}); subscriptions over
# a websocket (graphql-transport-ws, ${endpoints.subscriptions}).
#
# To act as a user, put a token in the Headers tab below:
#   { "Authorization": "Bearer <token>" }
# (in \`dev\`: cargo run -q -- token --user alice, or POST /dev/token).
# It goes with every HTTP request and in the websocket's connection_init.

{
  __typename
}
`;

const root = document.getElementById('graphiql');
if (root) {
  root.textContent = '';
  createRoot(root).render(
    <GraphiQL fetcher={createFetcher(endpoints)} defaultQuery={DEFAULT_QUERY} isHeadersEditorEnabled />,
  );
}
