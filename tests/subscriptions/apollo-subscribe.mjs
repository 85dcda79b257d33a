// A real Apollo Client for the integration tests: its HttpLink runs
// subscriptions over multipart HTTP (Accept: multipart/mixed;
// subscriptionSpec=1.0), as web apps using @apollo/client do by default.
//
//   node apollo-subscribe.mjs URL TOKEN QUERY [VARIABLES_JSON] [COUNT]
//
// Subscribes as the holder of TOKEN ("-" for none) and prints one JSON
// line per thing the client reports:
//   {"next":{"data":...}}                          per event
//   {"error":{"name":...,"messages":[...],"codes":[...]}}  when the subscription fails
//   {"complete":true}                              when it completes, or COUNT events arrived
//                                                  (then the client unsubscribes, which
//                                                  aborts the HTTP request)
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';

const [url, token, query, variablesJson, countArg] = process.argv.slice(2);
const variables = variablesJson ? JSON.parse(variablesJson) : {};
const count = countArg ? Number(countArg) : Infinity;
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const client = new ApolloClient({
  link: new HttpLink({
    uri: url,
    headers: token === '-' ? {} : { authorization: `Bearer ${token}` },
  }),
  cache: new InMemoryCache(),
});

// The errors Apollo Client reports: GraphQL errors of a response
// (CombinedGraphQLErrors), transport-level ones of a multipart
// subscription (CombinedProtocolErrors), or an HTTP failure (ServerError).
const describe = (error) => ({
  name: error?.name,
  messages: (error?.errors ?? [error]).map((e) => e?.message),
  codes: (error?.errors ?? []).map((e) => e?.extensions?.code),
  status: error?.statusCode,
});

let received = 0;
let done = false;
const finish = () => {
  if (!done) {
    done = true;
    print({ complete: true });
  }
};
const subscription = client.subscribe({ query: gql(query), variables }).subscribe({
  next: (result) => {
    if (result.error) {
      print({ error: describe(result.error) });
      return;
    }
    print({ next: { data: result.data } });
    received += 1;
    if (received >= count) {
      subscription.unsubscribe();
      finish();
    }
  },
  error: (error) => print({ error: describe(error) }),
  complete: finish,
});
print({ ready: true });
