// The peer of billing-bench: @supabase/stripe-sync-engine behind a minimal
// Node HTTP server. Every POST hands its raw body and Stripe-Signature
// header to StripeSync.processWebhook, which verifies the signature and
// upserts the event's object into PostgreSQL (schema "stripe"). It makes no
// Stripe call: nothing is revalidated through Stripe's API, related
// entities are not backfilled and lists are not expanded, so the objects
// are stored from the payload alone, as the billing service stores them.
//
// Environment: PEER_DATABASE_URL (a database of its own: the package's
// migrations create the "stripe" schema), PEER_WEBHOOK_SECRET,
// PEER_POOL_MAX (PostgreSQL connections), PEER_ADDR (host:port, port 0 for
// any). It logs JSON lines to stderr, one of which is
// {"msg":"listening","addr":"HOST:PORT"}, and stops on SIGTERM.
'use strict';

const http = require('node:http');
const { StripeSync, runMigrations } = require('@supabase/stripe-sync-engine');

function log(level, msg, fields) {
  process.stderr.write(JSON.stringify({ level, msg, ...fields }) + '\n');
}

async function main() {
  const databaseUrl = process.env.PEER_DATABASE_URL;
  const [host, port] = (process.env.PEER_ADDR || '127.0.0.1:0').split(':');
  await runMigrations({ databaseUrl, schema: 'stripe' });

  const sync = new StripeSync({
    poolConfig: { connectionString: databaseUrl, max: Number(process.env.PEER_POOL_MAX || 10) },
    stripeSecretKey: 'sk_test_unused',
    stripeWebhookSecret: process.env.PEER_WEBHOOK_SECRET,
    revalidateObjectsViaStripeApi: [],
    backfillRelatedEntities: false,
    autoExpandLists: false,
  });
  // runMigrations logs its failures instead of throwing them.
  const { rows } = await sync.postgresClient.query(
    "select to_regclass('stripe.customers') is not null as customers, to_regclass('stripe.subscriptions') is not null as subscriptions");
  if (!rows[0].customers || !rows[0].subscriptions) {
    throw new Error('the migrations did not create stripe.customers and stripe.subscriptions');
  }

  let failures = 0;
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      try {
        await sync.processWebhook(Buffer.concat(chunks), req.headers['stripe-signature']);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
      } catch (err) {
        const status = err && err.type === 'StripeSignatureVerificationError' ? 400 : 500;
        if (failures++ < 5) {
          log('ERROR', 'webhook failed', { status, error: String((err && err.message) || err) });
        }
        res.writeHead(status, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: String((err && err.message) || err) }));
      }
    });
  });
  server.keepAliveTimeout = 120000;
  server.listen(Number(port), host, () => {
    const a = server.address();
    log('INFO', 'listening', { addr: `${a.address}:${a.port}` });
  });
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    sync.close().finally(() => process.exit(0));
  });
}

main().catch((err) => {
  log('ERROR', 'peer failed', { error: String((err && err.stack) || err) });
  process.exit(1);
});
