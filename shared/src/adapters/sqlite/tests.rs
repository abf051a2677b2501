//! The group commit, batch by batch: `run_batch` is driven directly so every plan is known to
//! share one SQLite transaction.

use rusqlite::{Connection, OptionalExtension};
use serde_json::json;
use tokio::sync::oneshot;

use super::writer::{run_batch, Job};
use super::{open_writer, read_item, COLUMNS};
use crate::ports::{Expect, IndexKeys, Item, Key, StoreError, Write};

fn item(pk: &str, version: u64) -> Item {
    Item {
        key: Key::new(pk, "R"),
        version,
        indexes: IndexKeys::default(),
        expires_at_epoch: None,
        body: json!({"v": version}).into(),
        counters: &[],
        compact: false,
    }
}

fn put(pk: &str, version: u64, expect: Expect) -> Write {
    Write::Put { item: item(pk, version), expect }
}

fn job(writes: Vec<Write>, token: Option<&str>) -> (Job, oneshot::Receiver<Result<(), StoreError>>) {
    job_after(writes, token, &[])
}

fn job_after(
    writes: Vec<Write>,
    token: Option<&str>,
    after: &[&str],
) -> (Job, oneshot::Receiver<Result<(), StoreError>>) {
    let (reply, answer) = oneshot::channel();
    let after = after.iter().map(|t| t.to_string()).collect();
    (Job::new(&writes, token.map(str::to_string), after, reply), answer)
}

/// Runs `plans` as one batch; returns each plan's answer, in order.
fn batch(conn: &mut Connection, plans: Vec<(Vec<Write>, Option<&str>)>) -> Vec<Result<(), StoreError>> {
    let (jobs, answers): (Vec<_>, Vec<_>) = plans.into_iter().map(|(w, t)| job(w, t)).unzip();
    run_batch(conn, jobs, true);
    answers.into_iter().map(|mut a| a.try_recv().expect("answered when the batch ends")).collect()
}

fn version(conn: &Connection, pk: &str) -> Option<u64> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM items WHERE pk = ?1"), [pk], read_item).ok().map(|i| i.version)
}

/// A directory removed when the test ends.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> (Connection, Dir) {
    let dir = std::env::temp_dir().join(format!("countersign-writer-test-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conn = open_writer(&dir.join("t.db"), true).expect("open");
    (conn, Dir(dir))
}

/// A plan built on a queued write that fails must fail too, even when another write committed
/// the very version it expects (the versions alone cannot tell them apart).
#[test]
fn a_plan_built_on_a_queued_write_fails_with_it() {
    let (mut conn, _dir) = scratch();
    batch(&mut conn, vec![(vec![put("W", 1, Expect::Absent)], None)]);
    // X committed version 2 while A, planned on version 1, was being made.
    batch(&mut conn, vec![(vec![put("W", 2, Expect::Version(1))], Some("x"))]);
    let plans = vec![
        job(vec![put("W", 2, Expect::Version(1))], Some("a")),
        // B read A's pending version 2; X's version 2 is a different write.
        job_after(vec![put("W", 3, Expect::Version(2))], Some("b"), &["a"]),
        // C built on X, which committed.
        job_after(vec![put("C", 1, Expect::Absent)], Some("c"), &["x"]),
    ];
    let (jobs, answers): (Vec<_>, Vec<_>) = plans.into_iter().unzip();
    run_batch(&mut conn, jobs, false);
    let answers: Vec<_> = answers.into_iter().map(|mut a| a.try_recv().expect("answered")).collect();
    assert_eq!(answers, vec![Err(StoreError::ConditionFailed), Err(StoreError::ConditionFailed), Ok(())]);
    assert_eq!(version(&conn, "W"), Some(2), "X's write stands; nothing built on A's");
    // Within one batch: D commits in its savepoint, E after it sees D's token.
    let plans = vec![
        job(vec![put("W", 3, Expect::Version(2))], Some("d")),
        job_after(vec![put("W", 4, Expect::Version(3))], Some("e"), &["d"]),
    ];
    let (jobs, answers): (Vec<_>, Vec<_>) = plans.into_iter().unzip();
    run_batch(&mut conn, jobs, false);
    let answers: Vec<_> = answers.into_iter().map(|mut a| a.try_recv().expect("answered")).collect();
    assert_eq!(answers, vec![Ok(()), Ok(())]);
    assert_eq!(version(&conn, "W"), Some(4));
    // A resend of E (its token committed) succeeds whatever it came after.
    assert_eq!(batch(&mut conn, vec![(vec![put("W", 4, Expect::Version(3))], Some("e"))]), vec![Ok(())]);
}

#[test]
fn a_plan_that_fails_its_condition_leaves_the_rest_of_its_batch_committed() {
    let (mut conn, _dir) = scratch();
    let answers = batch(
        &mut conn,
        vec![
            (vec![put("A", 1, Expect::Absent)], None),
            // Fails on its second write: its first must not be kept either.
            (vec![put("B", 1, Expect::Absent), put("Z", 2, Expect::Version(1))], None),
            (vec![put("C", 1, Expect::Absent)], None),
        ],
    );
    assert_eq!(answers, [Ok(()), Err(StoreError::ConditionFailed), Ok(())]);
    assert_eq!(version(&conn, "A"), Some(1));
    assert_eq!(version(&conn, "B"), None, "rolled back to its savepoint");
    assert_eq!(version(&conn, "C"), Some(1));
}

#[test]
fn conflicting_plans_in_one_batch_are_checked_in_order_one_wins() {
    let (mut conn, _dir) = scratch();
    batch(&mut conn, vec![(vec![put("W", 1, Expect::Absent)], None)]);
    // Five plans all read version 1 of W: the first in the queue wins, the others see version 2.
    let plans = (0..5).map(|_| (vec![put("W", 2, Expect::Version(1))], None)).collect();
    let answers = batch(&mut conn, plans);
    assert_eq!(answers[0], Ok(()));
    assert!(answers[1..].iter().all(|a| *a == Err(StoreError::ConditionFailed)), "{answers:?}");
    // A plan made from the winner's version, queued behind it in the same batch, applies.
    let answers = batch(
        &mut conn,
        vec![(vec![put("W", 3, Expect::Version(2))], None), (vec![put("W", 4, Expect::Version(3))], None)],
    );
    assert_eq!(answers, [Ok(()), Ok(())]);
    assert_eq!(version(&conn, "W"), Some(4));
}

#[test]
fn a_token_applies_once_within_a_batch_and_across_batches() {
    let (mut conn, _dir) = scratch();
    let writes = vec![put("T", 1, Expect::Absent)];
    let answers = batch(&mut conn, vec![(writes.clone(), Some("tok-1")), (writes.clone(), Some("tok-1"))]);
    assert_eq!(answers, [Ok(()), Ok(())], "the resend succeeds without applying again");
    assert_eq!(batch(&mut conn, vec![(writes.clone(), Some("tok-1"))]), [Ok(())]);
    assert_eq!(version(&conn, "T"), Some(1));
    // A new token is a new transaction: its condition is checked.
    assert_eq!(batch(&mut conn, vec![(writes, Some("tok-2"))]), [Err(StoreError::ConditionFailed)]);
    // A plan that failed under its token leaves no token behind: a resend is checked again.
    let bump = vec![put("T", 2, Expect::Version(1))];
    let stale = vec![put("T", 3, Expect::Version(1))];
    assert_eq!(
        batch(&mut conn, vec![(bump, None), (stale.clone(), Some("tok-3"))])[1],
        Err(StoreError::ConditionFailed)
    );
    assert_eq!(batch(&mut conn, vec![(stale, Some("tok-3"))]), [Err(StoreError::ConditionFailed)]);
}

/// Tokens are forgotten once older than the window (and a purge interval): a resend after that is
/// a new transaction again, checked on its conditions. Younger ones stay remembered.
#[test]
fn a_token_is_remembered_for_the_window_then_forgotten() {
    let (mut conn, _dir) = scratch();
    let now_ms = super::epoch_seconds() as u64 * 1000;
    let made = |ago: std::time::Duration| ulid::Ulid::from_parts(now_ms - ago.as_millis() as u64, 7).to_string();
    let (old, recent) = (made(crate::ports::TOKEN_WINDOW * 2), made(crate::ports::TOKEN_WINDOW / 2));
    let writes = |pk: &str| vec![put(pk, 1, Expect::Absent)];
    assert_eq!(
        batch(&mut conn, vec![(writes("OLD"), Some(&old)), (writes("RECENT"), Some(&recent))]),
        [Ok(()), Ok(())]
    );
    // The next batch purges (the helper asks every batch to): the old token is gone, so its
    // resend is checked again and finds its item there; the recent one still answers as applied.
    let resent = batch(&mut conn, vec![(writes("OLD"), Some(&old)), (writes("RECENT"), Some(&recent))]);
    assert_eq!(resent, [Err(StoreError::ConditionFailed), Ok(())]);
    let tokens: i64 = conn.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0)).expect("count");
    assert_eq!(tokens, 1, "only the recent token is kept");
}

/// Crash safety: an answer goes out only after the batch's COMMIT returned. A COMMIT that fails
/// (here a deferred constraint, checked only at COMMIT) acknowledges nothing: the plans that had
/// applied are ambiguous (resend with the token), those that had failed were not applied.
#[test]
fn nothing_is_acknowledged_when_the_batch_commit_fails() {
    let (mut conn, _dir) = scratch();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE parent (id TEXT PRIMARY KEY);
         CREATE TABLE child (parent TEXT REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TEMP TRIGGER poison AFTER INSERT ON items WHEN new.pk = 'POISON'
         BEGIN INSERT INTO child VALUES ('missing'); END;",
    )
    .expect("poison");
    batch(&mut conn, vec![(vec![put("X", 1, Expect::Absent)], None)]);
    let answers = batch(
        &mut conn,
        vec![
            (vec![put("A", 1, Expect::Absent)], Some("tok-a")),
            (vec![put("X", 1, Expect::Absent)], None),
            (vec![put("POISON", 1, Expect::Absent)], None),
        ],
    );
    assert!(matches!(answers[0], Err(StoreError::Ambiguous(_))), "{answers:?}");
    assert!(matches!(answers[1], Err(StoreError::Unavailable(_))), "{answers:?}");
    assert!(matches!(answers[2], Err(StoreError::Ambiguous(_))), "{answers:?}");
    assert_eq!(version(&conn, "A"), None, "nothing of the batch committed");
    // The resend with the same token finds it was not applied, and applies it once.
    conn.execute_batch("DROP TRIGGER poison").expect("unpoison");
    assert_eq!(batch(&mut conn, vec![(vec![put("A", 1, Expect::Absent)], Some("tok-a"))]), [Ok(())]);
    assert_eq!(version(&conn, "A"), Some(1));
}

#[test]
fn a_durable_store_fsyncs_its_wal_at_every_commit() {
    let (conn, _dir) = scratch();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).expect("mode");
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).expect("sync");
    assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL with synchronous=FULL");
}

#[test]
fn a_prefix_bound_is_the_prefix_stepped_up() {
    use super::prefix_upper_bound;
    assert_eq!(prefix_upper_bound("POLICY#").as_deref(), Some("POLICY$"));
    assert_eq!(prefix_upper_bound("a\u{D7FF}").as_deref(), Some("a\u{E000}"), "skips the surrogates");
    assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_upper_bound(""), None);
    assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
}

#[test]
fn the_writer_journals_savepoints_in_memory_keeps_a_small_cache_and_leaves_checkpoints_to_its_own_thread() {
    let (conn, _dir) = scratch();
    let temp: i64 = conn.pragma_query_value(None, "temp_store", |r| r.get(0)).expect("temp_store");
    let auto: i64 = conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0)).expect("autocheckpoint");
    assert_eq!((temp, auto), (2, 0), "temp_store=MEMORY, no automatic checkpoint in the writer");
    // A large cache would be walked whole by commits (see open_writer).
    let cache: i64 = conn.pragma_query_value(None, "cache_size", |r| r.get(0)).expect("cache_size");
    assert_eq!(cache, -2000, "SQLite's default page cache");
}

#[tokio::test]
async fn the_checkpointer_folds_the_wal_into_the_database() {
    use crate::ports::Store;
    let dir = Dir(std::env::temp_dir().join(format!("countersign-ckpt-test-{}", ulid::Ulid::new())));
    let store = super::SqliteStore::open_dir(&dir.0).expect("open");
    // Only checkpoints write the database file (the writer's commits go to the WAL), and one
    // may run while the writes below are still going on.
    let db = dir.0.join("countersign.db");
    let before = std::fs::metadata(&db).expect("db").len();
    for i in 0..200 {
        store.apply(&[put(&format!("C#{i}"), 1, Expect::Absent)], None).await.expect("apply");
    }
    let wal = dir.0.join("countersign.db-wal");
    let grown = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(grown > 0, "commits went to the WAL");
    // The checkpointer runs on its own schedule: wait for it (a busy machine may delay it).
    let mut after = before;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        after = std::fs::metadata(&db).expect("db").len();
        if after > before {
            break;
        }
    }
    assert!(after > before, "checkpointed into the database file within 10 s ({before} -> {after} bytes)");
}

#[tokio::test]
async fn a_data_directory_of_the_first_layout_is_migrated_with_its_items() {
    use crate::ports::Store;
    let dir = Dir(std::env::temp_dir().join(format!("countersign-migrate-test-{}", ulid::Ulid::new())));
    std::fs::create_dir_all(&dir.0).expect("dir");
    {
        let old = Connection::open(dir.0.join("countersign.db")).expect("open");
        old.execute_batch(
            "CREATE TABLE items (
                pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL, ttl INTEGER,
                g1pk TEXT, g1sk TEXT, g2pk TEXT, g2sk TEXT, g3pk TEXT, g3sk TEXT, g4pk TEXT, g4sk TEXT,
                PRIMARY KEY (pk, sk)
            ) WITHOUT ROWID;
            CREATE INDEX by_org ON items (g1pk, g1sk, pk, sk) WHERE g1pk IS NOT NULL;
            CREATE INDEX due ON items (g4pk, g4sk, pk, sk) WHERE g4pk IS NOT NULL;
            CREATE TABLE tokens (token TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
            INSERT INTO items (pk, sk, version, body, g1pk, g1sk) VALUES ('W#1', 'R', 3, '{\"v\":3}', 'ORG#o', 'a');",
        )
        .expect("old layout");
    }
    let store = super::SqliteStore::open_dir(&dir.0).expect("migrated");
    let got = store.get(&Key::new("W#1", "R")).await.expect("get").expect("kept");
    assert_eq!((got.version, got.body), (3, json!({"v": 3}).into()));
    let by_org = store.query(crate::ports::Query::new(crate::ports::Index::ByOrg, "ORG#o", 10)).await.expect("query");
    assert_eq!(by_org.len(), 1, "indexes rebuilt");
    store.apply(&[put("W#1", 4, Expect::Version(3))], None).await.expect("updates as before");
    assert_eq!(store.apply(&[put("W#1", 1, Expect::Absent)], None).await, Err(StoreError::ConditionFailed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_steady_writes_and_reads_the_wal_starts_over_instead_of_growing() {
    use crate::ports::Store;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // Restarts once the WAL holds 256 frames (1 MiB).
    let store = super::SqliteStore::scratch(256).expect("store");
    let wal = {
        let mut path = store.scratch_path().expect("scratch").as_os_str().to_owned();
        path.push("-wal");
        std::path::PathBuf::from(path)
    };
    let writing = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, writing) = (store.clone(), writing.clone());
            tokio::spawn(async move {
                while writing.load(Ordering::Relaxed) {
                    store.get(&Key::new("S#0", "R")).await.expect("read");
                }
            })
        })
        .collect();
    // 16 writers, 6,400 items of 2 KiB: over 12 MiB of table pages alone.
    let body = "x".repeat(2048);
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (store, body) = (store.clone(), body.clone());
            tokio::spawn(async move {
                for i in 0..400 {
                    let item = Item { body: json!({"pad": body}).into(), ..item(&format!("S#{w}-{i}"), 1) };
                    store.apply(&[Write::Put { item, expect: Expect::Absent }], None).await.expect("apply");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    writing.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("reader");
    }
    // The WAL file keeps the size it reached: how long it ever grew (52 MB without restarts;
    // a few MiB with them, more on a loaded machine whose checkpointer runs late).
    let longest = std::fs::metadata(&wal).expect("wal").len();
    assert!(longest < 12 << 20, "the WAL grew to {longest} bytes for 12 MiB written");
}

#[test]
fn a_data_directory_of_the_second_layout_loses_the_token_time_index() {
    let (conn, dir) = scratch();
    conn.execute_batch("CREATE INDEX tokens_at ON tokens (at); PRAGMA user_version = 1;").expect("version 1");
    drop(conn);
    let conn = open_writer(&dir.0.join("t.db"), true).expect("migrated");
    let index: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE name = 'tokens_at'", [], |r| r.get(0))
        .optional()
        .expect("schema");
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!((index, version), (None, 5));
}

#[test]
fn a_due_query_seeks_the_due_index_by_kind_then_time() {
    let (conn, _dir) = scratch();
    let mut due = crate::ports::Query::new(crate::ports::Index::Due, "APPROVAL#3", 10);
    due.sk_at_most = Some("2026".into());
    due.newest_first = false;
    let (sql, args) = super::query_sql(&due).expect("sql");
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("plan")
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    assert_eq!(plan.len(), 1, "one step, no sort: {plan:?}");
    assert!(plan[0].contains("USING INDEX due (g4kind=? AND g4sk<?)"), "{plan:?}");
    assert_eq!(super::schema::due_kind("APPROVAL#3"), "APPROVAL");
    assert_eq!(super::schema::due_kind("OUTBOX_PARKED"), "OUTBOX_PARKED");
}

/// The generated kind and `due_kind` agree on every shape of partition (the index is only
/// sought by the kind `due_kind` computes).
#[test]
fn the_due_kind_column_and_due_kind_agree() {
    let (conn, _dir) = scratch();
    for partition in ["APPROVAL#3", "OUTBOX", "", "#", "#7", "A#B#3", "REVIEW#", "é#1", "ORG#o#X"] {
        conn.execute(
            "INSERT INTO items (pk, sk, version, body, g4pk, g4sk) VALUES (?1, 'K', 1, '{}', ?1, 's')",
            [partition],
        )
        .expect("insert");
        let kind: String =
            conn.query_row("SELECT g4kind FROM items WHERE pk = ?1", [partition], |r| r.get(0)).expect("kind");
        assert_eq!(kind, super::schema::due_kind(partition), "{partition:?}");
    }
}

/// The columns of the due index, in order.
fn due_index_columns(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT name FROM pragma_index_xinfo('due') WHERE key = 1 ORDER BY seqno")
        .expect("index info")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("columns")
}

#[test]
fn a_data_directory_of_the_second_layout_gets_the_due_kind_with_its_items() {
    let (conn, dir) = scratch();
    conn.execute_batch(
        "DROP INDEX due; ALTER TABLE items DROP COLUMN g4kind;
         CREATE INDEX due ON items (g4pk, g4sk, pk, sk) WHERE g4pk IS NOT NULL;
         INSERT INTO items (pk, sk, version, body, g4pk, g4sk) VALUES ('A#1', 'A', 1, '{}', 'APPROVAL#3', 't1');
         PRAGMA user_version = 2;",
    )
    .expect("version 2");
    drop(conn);
    let conn = open_writer(&dir.0.join("t.db"), true).expect("migrated");
    let kind: String = conn.query_row("SELECT g4kind FROM items WHERE pk = 'A#1'", [], |r| r.get(0)).expect("kind");
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    assert_eq!((kind.as_str(), version), ("APPROVAL", 5));
    assert_eq!(due_index_columns(&conn), ["g4kind", "g4sk", "pk", "sk", "g4pk"], "the due index rebuilt");
}

/// `n` items that expire at `ttl` (epoch seconds), of about 1 KiB each.
fn expiring(prefix: &str, n: usize, ttl: Option<i64>) -> Vec<Write> {
    let pad = "x".repeat(1024);
    (0..n)
        .map(|i| {
            let item =
                Item { expires_at_epoch: ttl, body: json!({"pad": pad}).into(), ..item(&format!("{prefix}{i}"), 1) };
            Write::Put { item, expect: Expect::Absent }
        })
        .collect()
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

/// The embedded store deletes what has expired (as DynamoDB's TTL does): under a steady stream
/// of records that expire (idempotency records, sessions, used review links) its item count and
/// its file stop growing.
#[test]
fn under_a_steady_stream_of_expiring_items_the_file_stops_growing() {
    let (mut conn, _dir) = scratch();
    let past = super::epoch_seconds() - 1;
    let mut pages = Vec::new();
    for round in 0..40 {
        // 200 records a round, each expired by the time the next round's batch purges.
        assert_eq!(batch(&mut conn, vec![(expiring(&format!("E#{round}-"), 200, Some(past)), None)]), [Ok(())]);
        pages.push(count(&conn, "PRAGMA page_count"));
    }
    let items = count(&conn, "SELECT COUNT(*) FROM items");
    assert!(items <= 200, "{items} items kept after 8,000 expired ones");
    // Once the first rounds' pages are freed they are reused: no growth past the tenth round.
    let (settled, last) = (pages[9], pages[39]);
    assert!(last <= settled, "the file grew from {settled} to {last} pages: {pages:?}");
}

/// A purge deletes at most a chunk: a backlog goes chunk by chunk, batch by batch, and only
/// what has expired goes (not an item expiring later, nor one without a TTL).
#[test]
fn expired_items_are_purged_in_bounded_chunks_and_only_those() {
    use super::writer::EXPIRED_CHUNK;
    let (mut conn, _dir) = scratch();
    let now = super::epoch_seconds();
    let mut writes = expiring("OLD#", 1200, Some(now - 10));
    writes.extend(expiring("LATER#", 3, Some(now + 3600)));
    writes.extend(expiring("KEPT#", 2, None));
    let (jobs, _answers): (Vec<_>, Vec<_>) = [job(writes, None)].into_iter().unzip();
    run_batch(&mut conn, jobs, false);
    let purged: Vec<usize> = (0..4).map(|_| run_batch(&mut conn, Vec::new(), true).expired).collect();
    assert_eq!(purged, [EXPIRED_CHUNK, EXPIRED_CHUNK, 200, 0]);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM items"), 5, "the unexpired items stay");
}

/// The purge finds expired items through the `expiring` index, never by scanning the table.
#[test]
fn the_purge_seeks_the_expiring_index() {
    let (conn, _dir) = scratch();
    let plan: Vec<String> = conn
        .prepare("EXPLAIN QUERY PLAN SELECT id FROM items WHERE ttl < ?1 ORDER BY ttl LIMIT ?2")
        .expect("plan")
        .query_map(rusqlite::params![0, 500], |r| r.get::<_, String>(3))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    assert_eq!(plan.len(), 1, "one step, no sort: {plan:?}");
    assert!(plan[0].contains("USING COVERING INDEX expiring (ttl<?)"), "{plan:?}");
}

#[test]
fn a_data_directory_of_the_third_layout_gets_the_expiring_index_with_its_items() {
    let (conn, dir) = scratch();
    conn.execute_batch(
        "DROP INDEX expiring;
         INSERT INTO items (pk, sk, version, body, ttl) VALUES ('IDEM#1', 'IDEM', 1, '{}', 1);
         PRAGMA user_version = 3;",
    )
    .expect("version 3");
    drop(conn);
    let mut conn = open_writer(&dir.0.join("t.db"), true).expect("migrated");
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).expect("version");
    let indexed = count(&conn, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'expiring'");
    assert_eq!((version, indexed, count(&conn, "SELECT COUNT(*) FROM items")), (5, 1, 1));
    assert_eq!(run_batch(&mut conn, Vec::new(), true).expired, 1, "its expired item is purged");
}

#[test]
fn organisations_of_the_fourth_layout_are_listed_for_sealing() {
    let (conn, dir) = scratch();
    conn.execute_batch(
        "INSERT INTO items (pk, sk, version, body) VALUES ('ORG#org_01', 'ORG', 1, '{}');
         INSERT INTO items (pk, sk, version, body) VALUES ('ORG#org_01', 'SETTINGS', 1, '{}');
         PRAGMA user_version = 4;",
    )
    .expect("version 4");
    drop(conn);
    let conn = open_writer(&dir.0.join("t.db"), true).expect("migrated");
    let listed = count(&conn, "SELECT COUNT(*) FROM items WHERE g1pk = 'ORGS' AND g1sk = 'org_01' AND sk = 'ORG'");
    let others = count(&conn, "SELECT COUNT(*) FROM items WHERE g1pk IS NOT NULL AND sk = 'SETTINGS'");
    assert_eq!((listed, others), (1, 0));
}
