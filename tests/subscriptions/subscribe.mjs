// A real graphql-ws client for the integration tests.
//
//   node subscribe.mjs URL TOKEN QUERY [VARIABLES_JSON] [COUNT]
//
// Connects with the token in the connection_init payload (TOKEN "-" for
// none), subscribes, and prints one JSON line per event:
//   {"ready":true}               once the server acknowledged the connection
//   {"next":<ExecutionResult>}   per event
//   {"error":[...]}              when the operation is refused
//   {"closed":CODE,"reason":..}  when the server closes the socket
//   {"complete":true}            when the operation completes (or COUNT events arrived)
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, query, variablesJson, countArg] = process.argv.slice(2);
const variables = variablesJson ? JSON.parse(variablesJson) : {};
const count = countArg ? Number(countArg) : Infinity;
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: false,
  onNonLazyError: () => {},
  connectionParams: token === '-' ? {} : { Authorization: `Bearer ${token}` },
  on: {
    connected: () => print({ ready: true }),
    closed: (event) => print({ closed: event.code, reason: event.reason }),
  },
});

let received = 0;
let done = false;
const finish = () => {
  if (!done) {
    done = true;
    print({ complete: true });
  }
  client.dispose();
};
const unsubscribe = client.subscribe(
  { query, variables },
  {
    next: (result) => {
      print({ next: result });
      received += 1;
      if (received >= count) {
        unsubscribe();
        finish();
      }
    },
    error: (error) => {
      print({ error: Array.isArray(error) ? error : { message: String(error?.reason ?? error?.message ?? error), code: error?.code } });
      client.dispose();
    },
    complete: finish,
  },
);
