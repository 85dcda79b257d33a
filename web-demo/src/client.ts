// The GraphQL clients: urql over HTTP (POST, so CSRF prevention lets it
// through without extra headers) and graphql-ws for subscriptions, both
// to the page's own origin, both carrying the signed-in user's token.
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
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
