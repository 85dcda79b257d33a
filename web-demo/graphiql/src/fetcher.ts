// The fetcher GraphiQL runs every operation through: queries and mutations
// over HTTP (POST JSON), subscriptions over a `graphql-ws` client
// (`graphql-transport-ws`) to the same origin.
//
// The headers tab applies to both: over HTTP every header goes with the
// request; over the websocket (a browser cannot set headers on the
// upgrade) the `Authorization` header goes in `connection_init` as
// `{ headers: { Authorization } }`, which the router accepts like the
// flat forms. One lazy client per `Authorization` value: a new token in
// the headers tab opens a new connection as that user, and a client holds
// a socket only while one of its subscriptions runs.
import {
  createGraphiQLFetcher,
  type Fetcher,
  type FetcherOpts,
  type FetcherParams,
  type Observable,
} from '@graphiql/toolkit';
import { getOperationAST, type DocumentNode } from 'graphql';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';

/** One response of a subscription, as graphql-ws hands it over. */
type Result = FormattedExecutionResult<Record<string, unknown>, unknown>;

/** Where this page sends operations, as the server told it. */
export interface Endpoints {
  /** Path of GraphQL over HTTP on this origin (`/graphql`). */
  http: string;
  /** Path of the `graphql-transport-ws` websocket on this origin. */
  subscriptions: string;
}

/** The `Authorization` value of the headers tab, whatever its case. */
export function authorizationOf(headers: FetcherOpts['headers']): string | undefined {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() === 'authorization' && typeof value === 'string' && value.trim() !== '') {
      return value.trim();
    }
  }
  return undefined;
}

/** Whether the operation GraphiQL runs (`name`, or the only one) is a
 * subscription. */
export function isSubscription(document: DocumentNode, name?: string | null): boolean {
  return getOperationAST(document, name ?? undefined)?.operation === 'subscription';
}

/** A websocket close or error as something GraphiQL can print. */
function describe(error: unknown): Error {
  if (error instanceof Error) return error;
  if (typeof CloseEvent !== 'undefined' && error instanceof CloseEvent) {
    return new Error(`the websocket closed: ${error.code}${error.reason ? ` ${error.reason}` : ''}`);
  }
  if (typeof Event !== 'undefined' && error instanceof Event) {
    return new Error('the websocket failed (is the server up?)');
  }
  return new Error(JSON.stringify(error));
}

/** The fetcher for this page: HTTP for queries and mutations, a websocket
 * (as the headers tab's user) for subscriptions. */
export function createFetcher(endpoints: Endpoints): Fetcher {
  const origin = window.location;
  const wsUrl = `${origin.protocol === 'https:' ? 'wss' : 'ws'}://${origin.host}${endpoints.subscriptions}`;
  // Plain JSON over HTTP: the router answers `multipart/mixed` only for
  // subscriptions, which go over the websocket here.
  const http = createGraphiQLFetcher({ url: endpoints.http, enableIncrementalDelivery: false });
  const clients = new Map<string, Client>();

  const clientFor = (authorization: string | undefined): Client => {
    const key = authorization ?? '';
    let client = clients.get(key);
    if (!client) {
      client = createClient({
        url: wsUrl,
        lazy: true,
        connectionParams: authorization ? { headers: { Authorization: authorization } } : {},
        // A refusal (bad token, no token) is shown, not retried for ever.
        retryAttempts: 0,
      });
      clients.set(key, client);
    }
    return client;
  };

  const subscribe = (client: Client, params: FetcherParams): Observable<Result> => ({
    subscribe(nextOrObserver?: unknown, error?: unknown, complete?: unknown) {
      const observer =
        typeof nextOrObserver === 'function' || nextOrObserver === undefined
          ? {
              next: nextOrObserver as ((value: Result) => void) | undefined,
              error: error as ((error: unknown) => void) | undefined,
              complete: complete as (() => void) | undefined,
            }
          : (nextOrObserver as {
              next?: (value: Result) => void;
              error?: (error: unknown) => void;
              complete?: () => void;
            });
      const dispose = client.subscribe(
        {
          query: params.query,
          operationName: params.operationName ?? undefined,
          variables: params.variables ?? undefined,
        },
        {
          next: (value) => observer.next?.(value),
          error: (err) => observer.error?.(describe(err)),
          complete: () => observer.complete?.(),
        },
      );
      return { unsubscribe: dispose };
    },
  });

  return (params, opts) => {
    if (opts?.documentAST && isSubscription(opts.documentAST, params.operationName)) {
      // The toolkit's types name graphql-ws 5's result type.
      return subscribe(clientFor(authorizationOf(opts.headers)), params) as ReturnType<Fetcher>;
    }
    return http(params, opts);
  };
}
