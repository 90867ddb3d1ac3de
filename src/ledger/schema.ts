// Schema migrations, applied in order; `PRAGMA user_version` = how many have run.
// Append a new string to change the schema; never edit one that has shipped.
//
// Money columns are INTEGER millisats. CHECK constraints restate the ledger's
// guarantees so that a bug aborts the transaction instead of corrupting the books,
// and triggers make the history tables append-only.

const appendOnly = (table: string) => `
CREATE TRIGGER ${table}_no_update BEFORE UPDATE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END;
CREATE TRIGGER ${table}_no_delete BEFORE DELETE ON ${table} BEGIN SELECT RAISE(ABORT, '${table} is append-only'); END;`;

const TIER_CHECK = "IN ('new','established','trusted','elite')";

export const MIGRATIONS: string[] = [
  `
CREATE TABLE pool (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  initial_msats INTEGER NOT NULL CHECK (initial_msats >= 0),
  credited_msats INTEGER NOT NULL DEFAULT 0 CHECK (credited_msats >= 0),
  balance_msats INTEGER NOT NULL CHECK (balance_msats >= 0),
  pending_msats INTEGER NOT NULL DEFAULT 0 CHECK (pending_msats >= 0),
  absorbed_msats INTEGER NOT NULL DEFAULT 0 CHECK (absorbed_msats >= 0),
  seeded_at_ms INTEGER NOT NULL,
  CHECK (initial_msats + credited_msats = balance_msats + pending_msats + absorbed_msats)
);

CREATE TABLE credits (
  id INTEGER PRIMARY KEY,
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  source TEXT NOT NULL CHECK (source IN ('operator','paid-job')),
  ref TEXT,
  created_at_ms INTEGER NOT NULL
);
${appendOnly("credits")}

CREATE TABLE identities (
  pubkey TEXT PRIMARY KEY CHECK (length(pubkey) = 64),
  score INTEGER NOT NULL DEFAULT 0,
  score_at_ms INTEGER NOT NULL,
  last_active_ms INTEGER,
  pinned_tier TEXT CHECK (pinned_tier ${TIER_CHECK}),
  banned INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0,1)),
  wot_floor TEXT CHECK (wot_floor ${TIER_CHECK}),
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE identity_log (
  id INTEGER PRIMARY KEY,
  pubkey TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT,
  at_ms INTEGER NOT NULL
);
CREATE INDEX identity_log_by_pubkey ON identity_log(pubkey, id);
${appendOnly("identity_log")}

CREATE TABLE requests (
  request_id TEXT PRIMARY KEY CHECK (length(request_id) = 64),
  pubkey TEXT NOT NULL,
  kind INTEGER NOT NULL,
  price_msats INTEGER NOT NULL CHECK (price_msats >= 0),
  decision TEXT NOT NULL CHECK (decision IN ('free','partial','gate','blocked')),
  tier TEXT CHECK (tier ${TIER_CHECK}),
  absorb_msats INTEGER NOT NULL CHECK (absorb_msats >= 0),
  charge_msats INTEGER NOT NULL CHECK (charge_msats >= 0),
  state TEXT NOT NULL CHECK (state IN ('awaiting-payment','processing','done','failed','expired','blocked')),
  paid_msats INTEGER NOT NULL DEFAULT 0 CHECK (paid_msats >= 0),
  payment_ref TEXT,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER,
  updated_at_ms INTEGER NOT NULL,
  CHECK (absorb_msats + charge_msats = price_msats OR decision = 'blocked')
) WITHOUT ROWID;
CREATE INDEX requests_open ON requests(expires_at_ms) WHERE state IN ('awaiting-payment','processing');
CREATE UNIQUE INDEX requests_payment_ref ON requests(payment_ref) WHERE payment_ref IS NOT NULL;

CREATE TABLE reservations (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE REFERENCES requests(request_id),
  pubkey TEXT NOT NULL,
  tier TEXT NOT NULL CHECK (tier ${TIER_CHECK}),
  budget_msats INTEGER NOT NULL CHECK (budget_msats >= 0),
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  -- What counts against the customer's daily budget: the amount while pending,
  -- what was absorbed once posted, 0 once voided or expired.
  counted_msats INTEGER NOT NULL CHECK (counted_msats >= 0 AND counted_msats <= amount_msats),
  state TEXT NOT NULL CHECK (state IN ('pending','posted','voided','expired')),
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL
);
CREATE INDEX reservations_by_pubkey ON reservations(pubkey, created_at_ms);
CREATE INDEX reservations_pending_by_expiry ON reservations(expires_at_ms) WHERE state = 'pending';
CREATE INDEX reservations_pending_by_pubkey ON reservations(pubkey) WHERE state = 'pending';
CREATE TRIGGER reservations_no_delete BEFORE DELETE ON reservations BEGIN SELECT RAISE(ABORT, 'reservations are never deleted'); END;
CREATE TRIGGER reservations_resolve_once BEFORE UPDATE OF state ON reservations
  WHEN OLD.state <> 'pending' BEGIN SELECT RAISE(ABORT, 'reservation already resolved'); END;

CREATE TABLE resolutions (
  reservation_id INTEGER PRIMARY KEY REFERENCES reservations(id),
  outcome TEXT NOT NULL CHECK (outcome IN ('posted','voided','expired')),
  absorbed_msats INTEGER NOT NULL CHECK (absorbed_msats >= 0),
  returned_msats INTEGER NOT NULL CHECK (returned_msats >= 0),
  reason TEXT,
  at_ms INTEGER NOT NULL
);
${appendOnly("resolutions")}

CREATE TABLE grants (
  seq INTEGER PRIMARY KEY CHECK (seq >= 1),
  reservation_id INTEGER NOT NULL UNIQUE REFERENCES reservations(id),
  request_id TEXT NOT NULL,
  pubkey TEXT NOT NULL,
  kind INTEGER NOT NULL,
  label TEXT NOT NULL CHECK (label IN ('free','partial')),
  tier TEXT NOT NULL,
  absorbed_msats INTEGER NOT NULL CHECK (absorbed_msats > 0),
  charged_msats INTEGER NOT NULL CHECK (charged_msats >= 0),
  total_initial_msats INTEGER NOT NULL,
  total_credited_msats INTEGER NOT NULL,
  total_absorbed_msats INTEGER NOT NULL,
  total_pending_msats INTEGER NOT NULL,
  total_pool_msats INTEGER NOT NULL,
  prev_event_id TEXT,
  event_id TEXT,
  event_json TEXT,
  created_at_ms INTEGER NOT NULL
);
CREATE INDEX grants_by_pubkey ON grants(pubkey, seq);
${appendOnly("grants")}
`,
  // 2: the service's durable state around the ledger: what each request's replies need,
  // the outbox (replies written in the deciding transaction, delivered after commit),
  // per-relay subscription cursors, events already handled, invoices, and the dev wallet.
  `
CREATE TABLE request_meta (
  request_id TEXT PRIMARY KEY REFERENCES requests(request_id),
  encryption TEXT NOT NULL CHECK (encryption IN ('none','nip04','nip44')),
  relay_hint TEXT NOT NULL,
  reply_relays_json TEXT NOT NULL,
  event_json TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE outbox (
  id INTEGER PRIMARY KEY,
  request_id TEXT,
  -- One reply of each purpose per request: the request id is the idempotency key.
  purpose TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('needs-invoice','ready','done','abandoned')),
  event_id TEXT UNIQUE,
  event_json TEXT,
  relays_json TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  CHECK (state = 'needs-invoice' OR state = 'abandoned' OR event_json IS NOT NULL)
);
CREATE UNIQUE INDEX outbox_once ON outbox(request_id, purpose) WHERE request_id IS NOT NULL;
CREATE INDEX outbox_open ON outbox(state) WHERE state IN ('needs-invoice','ready');

CREATE TABLE outbox_delivery (
  outbox_id INTEGER NOT NULL REFERENCES outbox(id),
  relay TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending','ok','failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER NOT NULL,
  last_message TEXT,
  PRIMARY KEY (outbox_id, relay)
) WITHOUT ROWID;
CREATE INDEX outbox_delivery_due ON outbox_delivery(next_attempt_at_ms) WHERE state = 'pending';

CREATE TABLE relay_cursors (
  relay TEXT PRIMARY KEY,
  since_sec INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE seen_events (
  event_id TEXT PRIMARY KEY,
  kind INTEGER NOT NULL,
  seen_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE invoices (
  payment_hash TEXT PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE REFERENCES requests(request_id),
  bolt11 TEXT NOT NULL,
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  backend TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open','paid','expired')),
  expires_at_ms INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  paid_at_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX invoices_open ON invoices(expires_at_ms) WHERE state = 'open';

-- The dev backend's embedded wallet (demo and tests only): invoices it issued and
-- whether \`dvm-gate dev-pay\` paid them.
CREATE TABLE dev_wallet_invoices (
  payment_hash TEXT PRIMARY KEY,
  bolt11 TEXT NOT NULL,
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  description TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  paid_at_ms INTEGER
) WITHOUT ROWID;
`,
  // invoice retries (issue 13): when a needs-invoice row may next ask the wallet and how
  // often it failed, and the backend-wide breaker, durable so a restart keeps the backoff.
  `
ALTER TABLE outbox ADD COLUMN invoice_attempts INTEGER NOT NULL DEFAULT 0 CHECK (invoice_attempts >= 0);
ALTER TABLE outbox ADD COLUMN next_invoice_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_invoice_error TEXT;

CREATE TABLE invoice_backend_state (
  backend TEXT PRIMARY KEY,
  failures INTEGER NOT NULL CHECK (failures >= 0),
  next_attempt_at_ms INTEGER NOT NULL,
  last_error TEXT,
  updated_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
`,
  // backends: the durable job queue of SPEC §11. A row is written in the transaction that
  // sends a job's go signal; `attempts` counts starts, so a job running when the gate
  // stopped is started again after restart at most `maxAttempts` times in all.
  `
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE REFERENCES requests(request_id),
  kind INTEGER NOT NULL,
  -- 3 elite … 0 new: waiting jobs start highest first, then by arrival (id).
  tier_rank INTEGER NOT NULL CHECK (tier_rank BETWEEN 0 AND 3),
  state TEXT NOT NULL CHECK (state IN ('waiting','running','done','failed','cancelled')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  queued_at_ms INTEGER NOT NULL,
  started_at_ms INTEGER,
  ended_at_ms INTEGER,
  reason TEXT
);
CREATE INDEX jobs_open ON jobs(kind, state, tier_rank DESC, id) WHERE state IN ('waiting','running');
`,
  // invoice limits (SPEC §6): requests refused an invoice by a limit, so the same request
  // seen again changes nothing, and the once-a-minute `rate-limited:` reply is counted
  // across restarts; plus indexes for counting open invoices per pubkey and tier `new`'s
  // invoices of the last minute inside the deciding transaction; identities by update, for
  // the intake's in-memory set of known pubkeys.
  `
CREATE TABLE limited_requests (
  request_id TEXT PRIMARY KEY CHECK (length(request_id) = 64),
  pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
  tier TEXT NOT NULL CHECK (tier ${TIER_CHECK}),
  limit_hit TEXT NOT NULL CHECK (limit_hit IN ('open-invoices','new-tier-rate')),
  replied INTEGER NOT NULL CHECK (replied IN (0, 1)),
  at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX limited_replies_by_pubkey ON limited_requests(pubkey, at_ms) WHERE replied = 1;
CREATE INDEX limited_replies_new_tier ON limited_requests(at_ms) WHERE replied = 1 AND tier = 'new';
CREATE INDEX limited_by_time ON limited_requests(at_ms);
CREATE INDEX requests_awaiting_by_pubkey ON requests(pubkey, expires_at_ms) WHERE state = 'awaiting-payment';
CREATE INDEX requests_invoiced_new_tier ON requests(created_at_ms) WHERE tier = 'new' AND decision IN ('partial','gate');
CREATE INDEX identities_by_update ON identities(updated_at_ms);
`,
  // prepaid balances (SPEC §12): a second kind of account beside the pool, one per
  // customer. Counters restate the history (deposits, holds and their resolutions,
  // withdrawals) so a CHECK aborts any transaction that would break
  // deposited = balance + held + spent + withdrawn, or take a balance below 0.
  `
CREATE TABLE balances (
  pubkey TEXT PRIMARY KEY CHECK (length(pubkey) = 64),
  deposited_msats INTEGER NOT NULL DEFAULT 0 CHECK (deposited_msats >= 0),
  balance_msats INTEGER NOT NULL DEFAULT 0 CHECK (balance_msats >= 0),
  held_msats INTEGER NOT NULL DEFAULT 0 CHECK (held_msats >= 0),
  spent_msats INTEGER NOT NULL DEFAULT 0 CHECK (spent_msats >= 0),
  withdrawn_msats INTEGER NOT NULL DEFAULT 0 CHECK (withdrawn_msats >= 0),
  updated_at_ms INTEGER NOT NULL,
  CHECK (deposited_msats = balance_msats + held_msats + spent_msats + withdrawn_msats)
) WITHOUT ROWID;

-- Each payment hash is credited once (ref UNIQUE). A zap above the cap is credited up to
-- it; the rest is recorded as excess, for the operator to refund by hand.
CREATE TABLE deposits (
  id INTEGER PRIMARY KEY,
  pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
  amount_msats INTEGER NOT NULL CHECK (amount_msats >= 0),
  excess_msats INTEGER NOT NULL DEFAULT 0 CHECK (excess_msats >= 0),
  source TEXT NOT NULL CHECK (source IN ('operator','zap','invoice')),
  ref TEXT UNIQUE,
  note TEXT,
  created_at_ms INTEGER NOT NULL,
  CHECK (amount_msats + excess_msats > 0),
  CHECK (source = 'operator' OR ref IS NOT NULL)
);
CREATE INDEX deposits_by_pubkey ON deposits(pubkey, id);
${appendOnly("deposits")}

-- A job's debit of a balance: held while the job is open, then spent (posted) or
-- refunded to the balance (voided, expired). Only the state changes, once.
CREATE TABLE balance_holds (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE REFERENCES requests(request_id),
  pubkey TEXT NOT NULL,
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  state TEXT NOT NULL CHECK (state IN ('held','spent','refunded')),
  created_at_ms INTEGER NOT NULL
);
CREATE INDEX balance_holds_held ON balance_holds(pubkey) WHERE state = 'held';
CREATE TRIGGER balance_holds_no_delete BEFORE DELETE ON balance_holds BEGIN SELECT RAISE(ABORT, 'balance holds are never deleted'); END;
CREATE TRIGGER balance_holds_resolve_once BEFORE UPDATE ON balance_holds
  WHEN OLD.state <> 'held' OR NEW.amount_msats <> OLD.amount_msats OR NEW.pubkey <> OLD.pubkey OR NEW.request_id <> OLD.request_id
  BEGIN SELECT RAISE(ABORT, 'balance hold already resolved or changed'); END;

CREATE TABLE balance_resolutions (
  hold_id INTEGER PRIMARY KEY REFERENCES balance_holds(id),
  outcome TEXT NOT NULL CHECK (outcome IN ('spent','refunded')),
  reason TEXT,
  at_ms INTEGER NOT NULL
);
${appendOnly("balance_resolutions")}

-- Money the operator paid back to a customer by hand, taken out of their balance.
CREATE TABLE withdrawals (
  id INTEGER PRIMARY KEY,
  pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  note TEXT,
  created_at_ms INTEGER NOT NULL
);
${appendOnly("withdrawals")}

-- Invoices made for POST /deposit; credited when the backend's own lookup says paid.
CREATE TABLE deposit_invoices (
  payment_hash TEXT PRIMARY KEY,
  pubkey TEXT NOT NULL CHECK (length(pubkey) = 64),
  bolt11 TEXT NOT NULL,
  amount_msats INTEGER NOT NULL CHECK (amount_msats > 0),
  backend TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open','paid','expired')),
  expires_at_ms INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  paid_at_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX deposit_invoices_open ON deposit_invoices(expires_at_ms) WHERE state = 'open';
`,
  // Only rows waiting for their invoice are ever looked up by state; a reply written
  // 'ready' and later marked 'done' no longer touches an index page twice (one page of
  // about nineteen a decision writes).
  `
DROP INDEX outbox_open;
CREATE INDEX outbox_needs_invoice ON outbox(next_invoice_at_ms, id) WHERE state = 'needs-invoice';

-- The request's metadata (about 700 bytes with its event) in rowid order: a new row goes
-- on the rightmost page, where keyed by the random request id it split a full page in
-- the middle of the tree every few decisions; the small unique index finds it by id.
CREATE TABLE request_meta_v2 (
  id INTEGER PRIMARY KEY,
  request_id TEXT NOT NULL UNIQUE REFERENCES requests(request_id),
  encryption TEXT NOT NULL CHECK (encryption IN ('none','nip04','nip44')),
  relay_hint TEXT NOT NULL,
  reply_relays_json TEXT NOT NULL,
  event_json TEXT NOT NULL
);
INSERT INTO request_meta_v2 (request_id, encryption, relay_hint, reply_relays_json, event_json)
  SELECT request_id, encryption, relay_hint, reply_relays_json, event_json FROM request_meta;
DROP TABLE request_meta;
ALTER TABLE request_meta_v2 RENAME TO request_meta;
`,
];
