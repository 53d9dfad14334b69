// Drives Apollo Client, with its persisted-queries link, against a running tenantql server, and
// prints what happened on the wire: every HTTP request the client made and what came back.
//
//   TENANTQL_TOKEN=<jwt> node apollo.mjs http://127.0.0.1:8000/graphql < plan.json
//
// The plan (JSON on stdin) lists clients, each a fresh ApolloClient with its own cache and link
// chain (PersistedQueryLink with node:crypto's SHA-256, then HttpLink over the global fetch):
//   {"clients": [{"label": "post", "clientName": "ios-app", "useGETForHashedQueries": false,
//                 "token": "<another tenant's jwt, optional>",
//                 "operations": ["query A { ... }", "query A { ... }"]}]}
// Each client runs its operations one after another with `fetchPolicy: "no-cache"`, so every
// operation goes to the network. Prints one JSON object:
//   {"apolloClient": "<version>", "clients": [{"label", "requests": [...], "results": [...]}]}
// A request is {method, hasQuery, sha256Hash, hashIsOfQuery, operationName, clientName, status,
// cacheControl, vary, codes, data};
// a result is {data} or {error: {name, message, codes}}, as the application sees it.
import { createHash } from 'node:crypto';

import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { CombinedGraphQLErrors, ServerError } from '@apollo/client/errors';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';

const url = process.argv[2];
const token = process.env.TENANTQL_TOKEN;
if (!url || !token) {
  console.error('usage: TENANTQL_TOKEN=<jwt> node apollo.mjs <graphql endpoint url> < plan.json');
  process.exit(2);
}

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

function codesOf(errors) {
  return (errors ?? []).map((error) => error?.extensions?.code ?? null);
}

// What the request carried: a GET's fields are in its URL, a POST's in its JSON body.
function sentFields(input, init) {
  const method = (init?.method ?? 'GET').toUpperCase();
  if (method === 'GET') {
    const params = new URL(String(input)).searchParams;
    const extensions = params.has('extensions') ? JSON.parse(params.get('extensions')) : {};
    return { method, query: params.get('query'), operationName: params.get('operationName'), extensions };
  }
  const body = JSON.parse(init.body);
  return { method, query: body.query ?? null, operationName: body.operationName ?? null, extensions: body.extensions ?? {} };
}

// The global fetch, recording each request and its response (read from a clone).
function recordingFetch(requests) {
  return async (input, init) => {
    const sent = sentFields(input, init);
    const response = await fetch(input, init);
    let body = null;
    try {
      body = await response.clone().json();
    } catch {
      // not JSON: recorded as having no errors and no data
    }
    requests.push({
      method: sent.method,
      hasQuery: typeof sent.query === 'string' && sent.query.length > 0,
      sha256Hash: sent.extensions?.persistedQuery?.sha256Hash ?? null,
      hashIsOfQuery: sent.query ? sent.extensions?.persistedQuery?.sha256Hash === sha256(sent.query) : null,
      operationName: sent.operationName,
      clientName: new Headers(init?.headers).get('apollographql-client-name'),
      status: response.status,
      cacheControl: response.headers.get('cache-control'),
      vary: response.headers.get('vary'),
      codes: codesOf(body?.errors),
      data: body?.data ?? null,
    });
    return response;
  };
}

function describeError(error) {
  if (CombinedGraphQLErrors.is(error)) {
    return { name: error.name, message: error.message, codes: codesOf(error.errors) };
  }
  if (ServerError.is(error)) {
    let codes = [];
    try {
      codes = codesOf(JSON.parse(error.bodyText).errors);
    } catch {
      // not JSON
    }
    return { name: error.name, message: error.message, status: error.statusCode, codes };
  }
  return { name: error?.name ?? 'Error', message: String(error?.message ?? error), codes: [] };
}

async function runClient(plan) {
  const requests = [];
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    clientAwareness: plan.clientName ? { name: plan.clientName, version: '1.0.0' } : undefined,
    // `createPersistedQueryLink(options)` is, in Apollo Client 4, a deprecated alias of this.
    link: new PersistedQueryLink({
      sha256,
      useGETForHashedQueries: Boolean(plan.useGETForHashedQueries),
    }).concat(
      new HttpLink({
        uri: url,
        headers: { authorization: `Bearer ${plan.token ?? token}` },
        fetch: recordingFetch(requests),
      }),
    ),
  });
  const results = [];
  for (const text of plan.operations) {
    try {
      const { data } = await client.query({ query: gql(text), fetchPolicy: 'no-cache' });
      results.push({ data });
    } catch (error) {
      results.push({ error: describeError(error) });
    }
  }
  client.stop();
  return { label: plan.label, requests, results };
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const plan = JSON.parse(Buffer.concat(chunks).toString('utf8'));

const version = new ApolloClient({ cache: new InMemoryCache(), link: new HttpLink({ uri: url }) }).version;
const clients = [];
for (const clientPlan of plan.clients) clients.push(await runClient(clientPlan));
process.stdout.write(JSON.stringify({ apolloClient: version, clients }, null, 2) + '\n');
