// Runs @backstage/catalog-client's calls against a plinth server and
// prints what each returned, as one JSON object, for the Rust test to check.
const { CatalogClient } = require('@backstage/catalog-client');

// With a token (third argument), every call sends it as a Backstage app's
// fetchApi does: Authorization: Bearer <token>.
const [baseUrl, extraTarget, token] = process.argv.slice(2);
const discoveryApi = { getBaseUrl: async () => baseUrl };
const fetchApi = token && {
  fetch: (url, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${token}`);
    return fetch(url, { ...init, headers });
  },
};
const client = new CatalogClient(fetchApi ? { discoveryApi, fetchApi } : { discoveryApi });
const names = items => items.map(e => (e ? e.metadata.name : null));

async function main() {
  const out = {};

  const production = await client.getEntities({
    filter: { kind: 'component', 'spec.lifecycle': 'production' },
    fields: ['metadata.name'],
    order: { field: 'metadata.name', order: 'asc' },
  });
  out.getEntities = names(production.items);
  out.getEntitiesFields = Object.keys(production.items[0]);

  const first = await client.queryEntities({
    filter: { kind: 'user' },
    orderFields: { field: 'metadata.name', order: 'asc' },
    limit: 3,
  });
  const second = await client.queryEntities({ cursor: first.pageInfo.nextCursor });
  out.queryEntities = {
    totalItems: first.totalItems,
    first: names(first.items),
    second: names(second.items),
    hasPrev: Boolean(second.pageInfo.prevCursor),
  };

  const predicate = await client.queryEntities({
    query: { $all: [{ kind: 'api' }, { $not: { 'spec.type': 'asyncapi' } }] },
    orderFields: { field: 'metadata.name', order: 'desc' },
    fields: ['metadata.name'],
  });
  out.queryEntitiesPredicate = { items: names(predicate.items), totalItems: predicate.totalItems };

  const byRefs = await client.getEntitiesByRefs({
    entityRefs: ['api:default/checkout-api', 'component:default/nope', 'group:default/keel'],
  });
  out.getEntitiesByRefs = names(byRefs.items);

  const checkout = await client.getEntityByRef('component:default/checkout-service');
  out.getEntityByRef = {
    name: checkout.metadata.name,
    owner: checkout.relations.find(r => r.type === 'ownedBy').targetRef,
    missing: (await client.getEntityByRef('component:default/nope')) === undefined,
  };

  const facets = await client.getEntityFacets({ facets: ['kind'], filter: { kind: ['api', 'domain'] } });
  out.getEntityFacets = facets.facets;

  const predicateFacets = await client.getEntityFacets({
    facets: ['spec.lifecycle'],
    query: { kind: 'component' },
  });
  out.getEntityFacetsPredicate = predicateFacets.facets;

  const ancestry = await client.getEntityAncestors({ entityRef: 'component:default/checkout-service' });
  out.getEntityAncestors = {
    root: ancestry.rootEntityRef,
    chain: ancestry.items.map(i => [i.entity.metadata.name, i.parentEntityRefs]),
  };

  const analysis = await client.analyzeLocation({ location: { type: 'file', target: extraTarget } });
  out.analyzeLocation = {
    existing: analysis.existingEntityFiles.map(f => [f.entity.metadata.name, f.isRegistered]),
    generate: analysis.generateEntities.length,
  };

  const locations = await client.getLocations();
  out.getLocations = locations.items.length;

  const dry = await client.addLocation({ type: 'file', target: extraTarget, dryRun: true });
  out.addLocationDryRun = { entities: names(dry.entities), exists: dry.exists };
  const added = await client.addLocation({ type: 'file', target: extraTarget });
  out.addLocation = { type: added.location.type, entities: names(added.entities) };
  out.getLocationsAfterAdd = (await client.getLocations()).items.length;

  const fileLocations = await client.queryLocations({ query: { type: 'file' }, limit: 1 });
  const rest = await client.queryLocations({ cursor: fileLocations.pageInfo.nextCursor });
  let streamed = 0;
  for await (const page of client.streamLocations()) streamed += page.length;
  out.queryLocations = {
    totalItems: fileLocations.totalItems,
    pages: [fileLocations.items.length, rest.items.length],
    streamed,
  };

  const moved = await client.updateLocation(added.location.id, { type: 'file', target: extraTarget });
  out.updateLocation = { same: moved.id === added.location.id, type: moved.type };

  await client.refreshEntity('component:default/extra');
  out.refreshEntity = 'ok';

  const extra = await client.getEntityByRef('component:default/extra');
  await client.removeEntityByUid(extra.metadata.uid);
  out.removeEntityByUid = (await client.getEntityByRef('component:default/extra')) === undefined;

  const valid = await client.validateEntity(
    { apiVersion: 'backstage.io/v1alpha1', kind: 'System', metadata: { name: 's' }, spec: { owner: 'keel' } },
    'url:https://example.com/catalog-info.yaml',
  );
  const invalid = await client.validateEntity(
    { apiVersion: 'backstage.io/v1alpha1', kind: 'System', metadata: { name: 's' }, spec: {} },
    'url:https://example.com/catalog-info.yaml',
  );
  out.validateEntity = { valid: valid.valid, invalid: invalid.valid, errors: invalid.errors.map(e => e.message) };

  try {
    await client.addLocation({ type: 'file', target: '/etc/passwd' });
    out.addLocationOutsideRoots = 'accepted';
  } catch (e) {
    out.addLocationOutsideRoots = e.name;
  }

  if (token) {
    // The per-call option, on a client without a fetchApi; and no token at all.
    const bare = new CatalogClient({ discoveryApi });
    const perCall = await bare.getEntityByRef('group:default/keel', { token });
    let refused;
    try {
      await bare.getEntityByRef('group:default/keel');
      refused = 'accepted';
    } catch (e) {
      refused = `${e.name} ${e.response && e.response.status}`;
    }
    out.tokens = { perCall: perCall.metadata.name, without: refused };
  }

  console.log(JSON.stringify(out));
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
