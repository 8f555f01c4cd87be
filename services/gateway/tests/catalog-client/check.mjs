// Drives Backstage's own catalog client, unchanged, against a Cadastre gateway loaded with the
// shared examples. Usage: node check.mjs <base URL of /api/catalog>. Exits non-zero on the first
// call whose result is not what Backstage's catalog would answer.
import assert from 'node:assert/strict';
import { CatalogClient } from '@backstage/catalog-client';

const baseUrl = process.argv[2];
// A catalog file on disk for the dry-run registration (file locations are allowed here).
const dryRunFile = process.argv[3];
const client = new CatalogClient({ discoveryApi: { getBaseUrl: async () => baseUrl } });
const checked = [];
const check = async (name, run) => {
  await run();
  checked.push(name);
};

await check('getEntityByRef', async () => {
  const artist = await client.getEntityByRef('component:default/artist-lookup');
  assert.equal(artist.metadata.name, 'artist-lookup');
  assert.ok(artist.metadata.uid);
  assert.ok(artist.relations.some(r => r.type === 'ownedBy'));
  assert.equal(await client.getEntityByRef('component:default/no-such-thing'), undefined);
});

await check('getEntitiesByRefs', async () => {
  const { items } = await client.getEntitiesByRefs({
    entityRefs: ['component:default/artist-lookup', 'component:default/no-such-thing', 'api:default/petstore'],
    fields: ['kind', 'metadata.name'],
  });
  assert.deepEqual(items, [
    { kind: 'Component', metadata: { name: 'artist-lookup' } },
    undefined,
    { kind: 'API', metadata: { name: 'petstore' } },
  ]);
});

await check('queryEntities', async () => {
  let page = await client.queryEntities({
    filter: { kind: 'component' },
    fields: ['metadata.name'],
    limit: 3,
    orderFields: { field: 'metadata.name', order: 'asc' },
  });
  const total = page.totalItems;
  assert.ok(total > 3);
  const names = page.items.map(e => e.metadata.name);
  while (page.pageInfo.nextCursor) {
    page = await client.queryEntities({ cursor: page.pageInfo.nextCursor, limit: 3 });
    names.push(...page.items.map(e => e.metadata.name));
  }
  assert.equal(names.length, total);
  assert.deepEqual(names, [...names].sort());
  const groups = await client.queryEntities({ filter: [{ kind: 'group' }, { kind: 'user' }], limit: 0 });
  assert.ok(groups.totalItems > 0);
  assert.equal(groups.items.length, 0);
});

await check('getEntityFacets', async () => {
  const { facets } = await client.getEntityFacets({ facets: ['kind', 'spec.type'], filter: { kind: 'component' } });
  assert.deepEqual(facets.kind.map(f => f.value), ['Component']);
  assert.ok(facets['spec.type'].some(f => f.value === 'service' && f.count > 0));
});

await check('getEntityAncestors', async () => {
  const ancestry = await client.getEntityAncestors({ entityRef: 'component:default/artist-lookup' });
  assert.equal(ancestry.rootEntityRef, 'component:default/artist-lookup');
  assert.equal(ancestry.items[0].entity.metadata.name, 'artist-lookup');
});

await check('locations', async () => {
  const target = 'https://git.example.com/org/repo/blob/main/catalog-info.yaml';
  const added = await client.addLocation({ type: 'url', target });
  assert.equal(added.location.target, target);
  assert.deepEqual(added.entities, []);
  const byId = await client.getLocationById(added.location.id);
  assert.equal(byId.target, target);
  const { items } = await client.getLocations();
  assert.ok(items.some(l => l.id === added.location.id));
  await assert.rejects(client.addLocation({ type: 'url', target }), err =>
    err.statusCode === 409 && err.body.error.name === 'ConflictError' && /already exists/.test(err.body.error.message));
  await client.removeLocationById(added.location.id);
  assert.equal(await client.getLocationById(added.location.id), undefined);
});

await check('addLocation dryRun', async () => {
  const result = await client.addLocation({ type: 'file', target: dryRunFile, dryRun: true });
  assert.equal(result.exists, false);
  assert.equal(result.location.type, 'file');
  assert.equal(result.location.target, dryRunFile);
  assert.equal(result.entities[0].kind, 'Location');
  assert.ok(result.entities.some(e => e.kind === 'Component' && e.metadata.name === 'dry-run-service'));
  assert.equal(await client.getEntityByRef('component:default/dry-run-service'), undefined);
});

await check('refreshEntity', async () => {
  await client.refreshEntity('component:default/artist-lookup');
  await assert.rejects(client.refreshEntity('component:default/no-such-thing'), err =>
    err.statusCode === 404 && err.body.error.name === 'NotFoundError');
});

await check('getEntities', async () => {
  const { items } = await client.getEntities({ filter: { kind: 'api' }, fields: ['metadata.name'] });
  assert.ok(items.some(e => e.metadata.name === 'petstore'));
  const page = await client.getEntities({ filter: { kind: 'component' }, limit: 2, order: { field: 'metadata.name', order: 'asc' } });
  assert.equal(page.items.length, 2);
});

await check('predicates', async () => {
  const page = await client.queryEntities({ query: { kind: 'component', 'spec.type': 'service' }, limit: 2 });
  assert.equal(page.items.length, 2);
  assert.ok(page.totalItems >= 2);
  const facets = await client.getEntityFacets({ facets: ['kind'], query: { kind: 'api' } });
  assert.deepEqual(facets.facets.kind.map(f => f.value), ['API']);
});

await check('validateEntity', async () => {
  const entity = { apiVersion: 'backstage.io/v1alpha1', kind: 'Component', metadata: { name: 'fresh' },
    spec: { type: 'service', lifecycle: 'production', owner: 'team-a' } };
  assert.deepEqual(await client.validateEntity(entity, 'url:https://x.example.com/c.yaml'), { valid: true });
  const invalid = await client.validateEntity({ ...entity, metadata: { name: 'Not A Name!' } }, 'url:https://x.example.com/c.yaml');
  assert.equal(invalid.valid, false);
  assert.ok(invalid.errors.some(e => /name/.test(e.message)));
});

await check('removeEntityByUid', async () => {
  const shuffle = await client.getEntityByRef('component:default/shuffle-api');
  await client.removeEntityByUid(shuffle.metadata.uid);
  assert.equal(await client.getEntityByRef('component:default/shuffle-api'), undefined);
  assert.equal(await client.getLocationByEntity('component:default/artist-lookup'), undefined);
});

await check('analyzeLocation', async () => {
  const analysis = await client.analyzeLocation({ location: { type: 'url', target: 'https://github.com/acme/payment-gateway' } });
  assert.deepEqual(analysis.existingEntityFiles, []);
  assert.equal(analysis.generateEntities[0].entity.metadata.name, 'payment-gateway');
  assert.equal(analysis.generateEntities[0].entity.spec.type, 'other');
});

console.log(JSON.stringify({ ok: true, checked }));
