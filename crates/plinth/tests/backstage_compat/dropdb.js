// Drops the database Backstage's catalog created for one test run.
const { Client } = require('pg');

async function main() {
  const client = new Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${process.argv[2]}" WITH (FORCE)`);
  await client.end();
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
