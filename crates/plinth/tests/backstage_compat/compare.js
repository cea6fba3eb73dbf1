// The same calls against Backstage's own catalog backend and against plinth,
// both reading the same catalog files; prints each call's two answers,
// normalised (uid and etag removed), as one JSON array for the Rust test.
// Arguments: the two catalog API base URLs (`http://host:port/api/catalog`).
// Backstage processes in the background, so this first waits until its
// answers hold every entity plinth has (plus the location entity Backstage
// generates for a registration) and stop changing.
const [backstage, plinth] = process.argv.slice(2);

const calls = [
  ['by-name', 'GET', '/entities/by-name/component/default/checkout-service'],
  ['by-name, any case', 'GET', '/entities/by-name/COMPONENT/Default/Checkout-Service'],
  ['by-name, missing', 'GET', '/entities/by-name/component/default/nope'],
  ['list, two filters, fields, order', 'GET', '/entities?filter=kind=component,spec.lifecycle=production&fields=metadata.name&order=asc:metadata.name'],
  ['list, filter sets OR, any case', 'GET', '/entities?filter=KIND=Component&filter=kind=API&fields=kind,metadata.name&order=asc:metadata.name'],
  ['list, tag value any case', 'GET', '/entities?filter=metadata.tags=RUST&fields=metadata.name&order=asc:metadata.name'],
  ['list, key exists', 'GET', '/entities?filter=spec.system&fields=metadata.name&order=asc:metadata.name'],
  ['list, relation filter', 'GET', '/entities?filter=relations.ownedBy=group:default/payments-team&fields=metadata.name&order=asc:metadata.name'],
  ['list, offset and limit', 'GET', '/entities?filter=kind=user&fields=metadata.name&order=desc:metadata.name&offset=2&limit=3'],
  ['by-query, first page', 'GET', '/entities/by-query?filter=kind=user&orderField=metadata.name,asc&limit=3&fields=metadata.name'],
  ['by-query, order by title desc', 'GET', '/entities/by-query?filter=kind=system&orderField=metadata.title,desc&fields=metadata.name,metadata.title'],
  ['by-query, full text on name', 'GET', '/entities/by-query?fullTextFilterTerm=PAY&fullTextFilterFields=metadata.name&orderField=metadata.name,asc&fields=metadata.name'],
  ['by-query, full text without fields', 'GET', '/entities/by-query?fullTextFilterTerm=pay&orderField=metadata.name,asc&fields=metadata.name'],
  ['by-query, full text without fields or order', 'GET', '/entities/by-query?fullTextFilterTerm=pay&fields=metadata.name'],
  ['by-query, predicate', 'POST', '/entities/by-query', {
    query: { $all: [{ kind: 'api' }, { $not: { 'spec.type': 'asyncapi' } }] },
    orderBy: [{ field: 'metadata.name', order: 'desc' }],
    fields: ['metadata.name'],
  }],
  ['by-query, predicate $in and $exists', 'POST', '/entities/by-query', {
    query: { kind: { $in: ['Group', 'domain'] }, 'spec.parent': { $exists: true } },
    orderBy: [{ field: 'metadata.name', order: 'asc' }],
    fields: ['metadata.name'],
  }],
  ['by-query, bad cursor', 'GET', '/entities/by-query?cursor=nonsense!'],
  ['by-refs', 'POST', '/entities/by-refs', {
    entityRefs: ['api:default/checkout-api', 'component:default/nope', 'Group:Default/Keel'],
    fields: ['kind', 'metadata.name'],
  }],
  ['facets, filtered', 'GET', '/entity-facets?facet=spec.lifecycle&facet=metadata.tags&filter=kind=component'],
  ['facets, relations', 'GET', '/entity-facets?facet=relations.ownedBy&filter=kind=component'],
  ['facets, kind', 'GET', '/entity-facets?facet=kind'],
  ['facets, predicate', 'POST', '/entity-facets', { facets: ['spec.type'], query: { kind: 'api' } }],
  ['validate, valid', 'POST', '/validate-entity', {
    location: 'url:https://example.com/catalog-info.yaml',
    entity: { apiVersion: 'backstage.io/v1alpha1', kind: 'System', metadata: { name: 's' }, spec: { owner: 'keel' } },
  }],
  ['validate, invalid', 'POST', '/validate-entity', {
    location: 'url:https://example.com/catalog-info.yaml',
    entity: { apiVersion: 'backstage.io/v1alpha1', kind: 'System', metadata: { name: 's' }, spec: {} },
  }],
  ['ancestry', 'GET', '/entities/by-name/component/default/checkout-service/ancestry'],
];

function normalise(value) {
  if (Array.isArray(value)) return value.map(normalise);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === 'uid' || k === 'etag') continue;
      out[k] = normalise(v);
    }
    return out;
  }
  return value;
}

async function call(base, method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: normalise(json) };
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function total(base) {
  try {
    return (await call(base, 'GET', '/entities/by-query?limit=1')).body.totalItems;
  } catch {
    return -1; // not listening yet
  }
}

async function settled() {
  const deadline = Date.now() + 240_000;
  const expected = (await total(plinth)) + 1;
  let previous = '';
  while (Date.now() < deadline) {
    if ((await total(backstage)) === expected) {
      const answers = [];
      for (const [, method, path, body] of calls) {
        answers.push(await call(backstage, method, path, body));
      }
      const now = JSON.stringify(answers);
      if (now === previous) return;
      previous = now;
    }
    await sleep(2000);
  }
  throw new Error(`Backstage did not settle on ${expected} entities within 240 s`);
}

async function main() {
  await settled();
  const out = [];
  for (const [name, method, path, body] of calls) {
    out.push({
      name,
      backstage: await call(backstage, method, path, body),
      plinth: await call(plinth, method, path, body),
    });
  }
  console.log(JSON.stringify(out));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
