// A graphql-ws client that never gives up on notificationAdded, as a web
// or mobile app should run it (the storefront's bell does the same):
//
//   node resume-subscribe.mjs URLS TOKEN QUERY
//
// URLS is a comma-separated list of router URLs standing for one address
// behind a load balancer: each (re)connection goes to the next one. On
// every event the subscription's `after` variable becomes that
// notification's id, so when the socket is lost graphql-ws's retry
// subscribes again from the last notification seen. Prints:
//   {"connected":N}      each time a connection is acknowledged (N counts them)
//   {"next":<ExecutionResult>}   per event
//   {"error":[...]}      if the operation is refused
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [urlList, token, query] = process.argv.slice(2);
const urls = urlList.split(',');
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

let attempt = 0;
let connections = 0;
const client = createClient({
  url: () => urls[attempt++ % urls.length],
  webSocketImpl: WebSocket,
  retryAttempts: Infinity,
  shouldRetry: () => true,
  retryWait: () => new Promise((resolve) => setTimeout(resolve, 100)),
  lazy: false,
  onNonLazyError: () => {},
  connectionParams: { Authorization: `Bearer ${token}` },
  on: {
    connected: () => print({ connected: ++connections }),
  },
});

// The same object is sent again on every retry: `after` moves with it.
const payload = { query, variables: { after: null } };
client.subscribe(payload, {
  next: (result) => {
    const id = result?.data?.notificationAdded?.id;
    if (id) payload.variables.after = id;
    print({ next: result });
  },
  error: (error) => print({ error: Array.isArray(error) ? error : { message: String(error?.reason ?? error?.message ?? error) } }),
  complete: () => print({ complete: true }),
});
