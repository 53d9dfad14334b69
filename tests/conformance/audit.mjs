// Runs graphql-http's GraphQL over HTTP server audits against a running tenantql server.
//
//   TENANTQL_TOKEN=<jwt> node audit.mjs http://127.0.0.1:8000/graphql
//
// Every audited request carries `Authorization: Bearer <token>` (our server answers 401
// without one). Prints a JSON array, one entry per audit, in the audits' order:
// {id, name, requirement, status: ok|warn|notice|error|fatal, reason, httpStatus, body}.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
const token = process.env.TENANTQL_TOKEN;
if (!url || !token) {
  console.error('usage: TENANTQL_TOKEN=<jwt> node audit.mjs <graphql endpoint url>');
  process.exit(2);
}

function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

async function bodyOf(response) {
  try {
    return (await response.text()).slice(0, 500);
  } catch {
    return null; // the audit has already read it
  }
}

const results = [];
for (const audit of serverAudits({ url, fetchFn: fetchWithToken })) {
  const entry = { id: audit.id, name: audit.name, requirement: audit.name.split(' ')[0] };
  try {
    const result = await audit.fn();
    entry.status = result.status;
    if (result.status !== 'ok') {
      entry.reason = result.reason;
      entry.httpStatus = result.response?.status ?? null;
      entry.body = result.response ? await bodyOf(result.response) : null;
    }
  } catch (error) {
    // graphql-http throws (rather than reporting a failure) only when the audit itself broke.
    entry.status = 'fatal';
    entry.reason = String(error?.stack ?? error);
  }
  results.push(entry);
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
