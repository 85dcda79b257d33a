// The GraphQL clients: urql over HTTP (POST, so CSRF prevention lets it
// through without extra headers) and graphql-ws for subscriptions, both
// to the page's own origin, both carrying the signed-in user's token.
//
// Every operation goes by id only (an APQ `sha256Hash` with no text): the
// ids are those of src/gql/persisted-documents.json, which the router
// serving this page registers, so the page runs unchanged when the router
// accepts registered operations only (`PERSISTED_QUERIES_SAFELIST=true`).
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import type { DocumentNode } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';

export interface Clients {
  client: Client;
  ws: WsClient;
}

function wsUrl(): string {
  const url = new URL('/graphql', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/** The persisted id codegen gave `document` (see codegen.ts). */
export function persistedId(document: DocumentNode): string {
  const id = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
  if (!id) throw new Error('a document without a persisted id: run `npm run codegen`');
  return id;
}

/** The `extensions` of a request sent by id only. */
export function byId(document: DocumentNode) {
  return { persistedQuery: { version: 1, sha256Hash: persistedId(document) } };
}

export function makeClients(token: string | null): Clients {
  const ws = createWsClient({
    url: wsUrl(),
    // The router reads the token from connection_init.
    connectionParams: () => (token ? { Authorization: `Bearer ${token}` } : {}),
    // Stay connected, and come back after a network drop: the bell resumes
    // from the last notification it saw when the socket reconnects.
    lazy: false,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (retries) => {
      const delay = Math.min(1000 * 2 ** retries, 10_000) * (0.5 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, delay));
    },
    keepAlive: 10_000,
    onNonLazyError: () => {},
  });
  const client = new Client({
    url: '/graphql',
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
    fetchOptions: (): RequestInit => ({
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }),
    exchanges: [
      cacheExchange,
      persistedExchange({
        enforcePersistedQueries: true,
        // POST like every other request (a GET would need CSRF prevention's
        // preflight header, and the signed-in answers are never cached).
        preferGetForPersistedQueries: false,
        enableForMutation: true,
        enableForSubscriptions: true,
        generateHash: async (_query, document) => persistedId(document),
      }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return { client, ws };
}
